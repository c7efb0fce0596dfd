package supervisor

import (
	"strconv"
	"syscall"
)

var signals = map[string]syscall.Signal{
	"SIGTERM": syscall.SIGTERM,
	"SIGINT":  syscall.SIGINT,
	"SIGQUIT": syscall.SIGQUIT,
	"SIGHUP":  syscall.SIGHUP,
	"SIGUSR1": syscall.SIGUSR1,
	"SIGUSR2": syscall.SIGUSR2,
	"SIGKILL": syscall.SIGKILL,
	"SIGSEGV": syscall.SIGSEGV,
	"SIGABRT": syscall.SIGABRT,
	"SIGPIPE": syscall.SIGPIPE,
	"SIGBUS":  syscall.SIGBUS,
	"SIGFPE":  syscall.SIGFPE,
	"SIGILL":  syscall.SIGILL,
}

// stopSignal maps a template's StopSignal to the signal; empty or unknown means SIGTERM
// (spec validation rejects unknown names before they get here).
func stopSignal(name string) syscall.Signal {
	if sig, ok := signals[name]; ok {
		return sig
	}
	return syscall.SIGTERM
}

// signalName is "SIGKILL" for syscall.SIGKILL; a signal without a name is its number.
func signalName(sig syscall.Signal) string {
	for name, s := range signals {
		if s == sig {
			return name
		}
	}
	return strconv.Itoa(int(sig))
}

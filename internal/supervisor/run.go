package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// process is one started child of an instance.
type process struct {
	pid     int
	started time.Time
	exited  chan *os.ProcessState // receives once, when the child has been reaped
	// stderrDone is closed when the child's stderr pipe is read to its end.
	stderrDone chan struct{}
	// tail keeps the last lines the child wrote to stderr.
	tail *lineTail
}

// How much of a process's stderr is kept to say why it exited.
const (
	stderrTailLines = 5
	stderrTailBytes = 200
	// stderrWait bounds the wait for the last stderr lines of a process that exited (a
	// grandchild may hold the pipe open).
	stderrWait = 500 * time.Millisecond
)

// lineTail keeps the last stderrTailLines lines written to a stream, each cut at
// stderrTailBytes, with secrets (the template's env values) replaced by "***".
type lineTail struct {
	secrets []string
	mu      sync.Mutex
	lines   []string
}

func (t *lineTail) add(line []byte) {
	l := string(line)
	for _, sec := range t.secrets {
		l = strings.ReplaceAll(l, sec, "***")
	}
	if len(l) > stderrTailBytes {
		l = strings.ToValidUTF8(l[:stderrTailBytes], "") + "…"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == stderrTailLines {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:stderrTailLines-1]
	}
	t.lines = append(t.lines, l)
}

func (t *lineTail) get() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lines)
}

// secretsOf are the values of the template's env variables long enough to be worth hiding.
func secretsOf(t *v1alpha1.ProcessTemplate) []string {
	var out []string
	for _, e := range t.Env {
		if len(e.Value) >= 4 {
			out = append(out, e.Value)
		}
	}
	return out
}

// run is an instance's goroutine: it starts, probes, restarts and finally stops the instance.
func (s *Supervisor) run(in *instance) {
	defer s.wg.Done()
	if in.process == nil {
		s.update(in, func(i *Instance) { i.StartedAt = time.Now() })
		s.watch(in, nil)
	} else {
		s.runProcess(in)
	}
	s.remove(in)
}

func (s *Supervisor) runProcess(in *instance) {
	crashes := 0
	for {
		var ran time.Duration
		p, err := s.startProcess(in)
		if err != nil && in.ctx.Err() == nil {
			in.log.Error("start instance", "err", err)
			s.update(in, func(i *Instance) { i.Message, i.LastExit = "start: "+err.Error(), "start: "+err.Error() })
		} else if !s.watch(in, p) {
			return
		} else {
			ran = time.Since(p.started)
		}
		if ran >= s.opts.MaxRestartBackoff {
			crashes = 0
		}
		crashes++
		delay := s.opts.RestartBackoff << min(crashes-1, 30)
		if delay > s.opts.MaxRestartBackoff || delay <= 0 {
			delay = s.opts.MaxRestartBackoff
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-in.ctx.Done():
			t.Stop()
			if !s.isDetached() {
				s.drain(in)
			}
			return
		}
		s.update(in, func(i *Instance) {
			i.Restarts++
			i.CrashLooping = i.Restarts >= crashLoopRestarts
		})
	}
}

// startProcess starts the instance's child on its previous port when that is still free, on
// a new free port otherwise.
func (s *Supervisor) startProcess(in *instance) (*process, error) {
	if in.ctx.Err() != nil {
		return nil, in.ctx.Err()
	}
	port, err := s.pickPort(in)
	if err != nil {
		return nil, err
	}
	t := in.process
	ps := strconv.Itoa(port)
	args := make([]string, len(t.Args))
	for i, a := range t.Args {
		args[i] = strings.ReplaceAll(a, "$(PORT)", ps)
	}
	cmd := exec.Command(t.Command, args...)
	cmd.Dir = t.WorkingDir
	env := os.Environ()
	for _, e := range t.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	cmd.Env = append(env, "PORT="+ps)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	// The child writes into pipes that a goroutine per stream empties into the log; with
	// *os.File outputs exec starts no copying goroutines of its own, so Wait does not wait
	// for grandchildren that keep the pipes open.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	p := &process{
		pid: cmd.Process.Pid, started: time.Now(), exited: make(chan *os.ProcessState, 1),
		stderrDone: make(chan struct{}), tail: &lineTail{secrets: secretsOf(t)},
	}
	go pipeLog(in, "stdout", outR, nil)
	go func() {
		defer close(p.stderrDone)
		pipeLog(in, "stderr", errR, p.tail)
	}()

	go func() {
		_ = cmd.Wait() // the status is in ProcessState
		p.exited <- cmd.ProcessState
	}()
	var ticks uint64
	if pr, err := s.proc.Proc(p.pid); err == nil {
		if st, err := pr.Stat(); err == nil {
			ticks = st.Starttime
		}
	}
	s.mu.Lock()
	in.running = true
	in.pgid = p.pid
	in.startTicks = ticks
	in.info.PID = p.pid
	in.info.Addr = net.JoinHostPort("127.0.0.1", ps)
	in.info.StartedAt = p.started
	in.info.Ready, in.info.ReadySince = false, time.Time{}
	in.info.ConsecutiveFailures = 0
	in.cpuPast += in.info.CPUSeconds
	in.info.CPUSeconds, in.info.MemoryBytes = 0, 0
	if in.info.CreatedAt.IsZero() {
		in.info.CreatedAt = p.started
	}
	s.mu.Unlock()
	s.writeState()
	s.notify(in.rev.key.rollout)
	in.log.Info("instance started", "pid", p.pid, "addr", in.info.Addr)
	return p, nil
}

// pickPort returns the instance's previous port when it can still be bound, else a free port
// of 127.0.0.1 that no other instance was given.
func (s *Supervisor) pickPort(in *instance) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.port != 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(in.port))); err == nil {
			l.Close()
			return in.port, nil
		}
		delete(s.ports, in.port)
		in.port = 0
	}
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !s.ports[port] {
			s.ports[port] = true
			in.port = port
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port: every port offered is taken by an instance")
}

// pipeLog logs each line r yields until it ends, and keeps the last ones in tail (if not nil).
func pipeLog(in *instance, stream string, r *os.File, tail *lineTail) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n') // a longer line is logged in pieces
		if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 {
			in.log.Info(string(line), "stream", stream)
			if tail != nil {
				tail.add(line)
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// watch probes the instance until its process p exits (true: restart it) or it is to stop
// (false, after stopping it). p is nil for a fixed upstream, which is only drained.
func (s *Supervisor) watch(in *instance, p *process) bool {
	pr := probeSettings(in.process)
	var exited chan *os.ProcessState
	if p != nil {
		exited = p.exited
	}
	timer := time.NewTimer(pr.initialDelay)
	defer timer.Stop()
	everReady := false
	successes := int32(0)
	for {
		select {
		case st := <-exited:
			msg, ran := exitMessage(st), time.Since(p.started)
			s.exited(in, p, msg) // not ready at once; kills the grandchildren that may hold stderr
			// Then the exit is counted, with the last lines of stderr once it is read.
			t := time.NewTimer(stderrWait)
			select {
			case <-p.stderrDone:
			case <-t.C:
			}
			t.Stop()
			in.log.Warn("instance exited", "status", msg, "ran", ran.Round(time.Millisecond))
			s.update(in, func(i *Instance) {
				i.Exits++
				i.ExitStderr = p.tail.get()
				i.ExitRan = ran
			})
			s.notify(in.rev.key.rollout)
			return true
		case <-in.ctx.Done():
			if s.isDetached() {
				return false
			}
			if p == nil {
				s.drain(in)
				return false
			}
			s.stopProcess(in, p)
			return false
		case <-timer.C:
		}

		if p != nil {
			s.sample(in, p)
		}
		err := s.probe(in.ctx, in, pr)
		if in.ctx.Err() != nil {
			continue // stopping: the select above takes it from here
		}
		now := time.Now()
		changed := false
		s.mu.Lock()
		i := &in.info
		if err == nil {
			i.ConsecutiveFailures = 0
			successes++
			if !i.Ready && successes >= pr.success {
				i.Ready, i.ReadySince, i.Message = true, now, ""
				everReady, changed = true, true
			}
		} else {
			successes = 0
			if everReady {
				// Probes before the process's first success are its start-up, not failures.
				i.ReadinessFailures++
			}
			i.ConsecutiveFailures++
			i.Message = err.Error()
			if i.Ready && i.ConsecutiveFailures >= pr.failure {
				i.Ready, i.ReadySince = false, time.Time{}
				changed = true
			}
		}
		if i.CrashLooping && p != nil && now.Sub(p.started) >= s.opts.MaxRestartBackoff {
			i.CrashLooping = false
		}
		s.mu.Unlock()
		if changed {
			if err == nil {
				in.log.Info("instance ready")
			} else {
				in.log.Warn("instance not ready", "err", err)
			}
			s.notify(in.rev.key.rollout)
		}
		if everReady {
			timer.Reset(pr.period)
		} else {
			timer.Reset(min(fastProbeInterval, pr.period))
		}
	}
}

// exited records that p exited with msg and kills what is left of its process group.
func (s *Supervisor) exited(in *instance, p *process, msg string) {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL) // grandchildren the child left behind
	s.mu.Lock()
	in.running = false
	in.info.PID = 0
	in.info.Ready, in.info.ReadySince = false, time.Time{}
	in.info.Message, in.info.LastExit = msg, msg
	s.mu.Unlock()
	s.writeState()
	s.notify(in.rev.key.rollout)
}

// stopProcess drains the instance, sends the stop signal to its process group, and SIGKILLs
// the group when it has not exited within the grace period.
func (s *Supervisor) stopProcess(in *instance, p *process) {
	s.drain(in)
	grace := gracePeriod(in.process)
	sig := stopSignal(in.process.StopSignal)
	in.log.Info("stopping instance", "signal", signalName(sig), "grace", grace)
	_ = syscall.Kill(-p.pid, sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	var st *os.ProcessState
	select {
	case st = <-p.exited:
	case <-t.C:
		in.log.Warn("instance did not stop within its grace period; killing it", "grace", grace)
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		st = <-p.exited
	}
	msg := exitMessage(st)
	in.log.Info("instance stopped", "status", msg)
	s.exited(in, p, msg)
}

// drain calls Options.Drain, bounded by the instance's grace period.
func (s *Supervisor) drain(in *instance) {
	if s.opts.Drain == nil {
		return
	}
	s.mu.Lock()
	snap := in.info
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), gracePeriod(in.process))
	defer cancel()
	s.opts.Drain(ctx, snap)
}

// sample reads the CPU time and resident memory of p from /proc.
func (s *Supervisor) sample(in *instance, p *process) {
	pr, err := s.proc.Proc(p.pid)
	if err != nil {
		return
	}
	st, err := pr.Stat()
	if err != nil {
		return
	}
	s.mu.Lock()
	in.info.CPUSeconds = st.CPUTime()
	in.info.MemoryBytes = int64(st.ResidentMemory())
	s.mu.Unlock()
}

type probeConfig struct {
	http                 *v1alpha1.HTTPGetAction // nil: TCP connect
	initialDelay, period time.Duration
	timeout              time.Duration
	success, failure     int32
}

// probeSettings applies the defaults documented in api/v1alpha1.
func probeSettings(t *v1alpha1.ProcessTemplate) probeConfig {
	c := probeConfig{period: defaultPeriod, timeout: defaultTimeout, success: defaultSuccess, failure: defaultFailure}
	if t == nil || t.ReadinessProbe == nil {
		return c
	}
	p := t.ReadinessProbe
	c.http = &p.HTTPGet
	c.initialDelay = time.Duration(p.InitialDelaySeconds) * time.Second
	if p.PeriodSeconds > 0 {
		c.period = time.Duration(p.PeriodSeconds) * time.Second
	}
	if p.TimeoutSeconds > 0 {
		c.timeout = time.Duration(p.TimeoutSeconds) * time.Second
	}
	if p.SuccessThreshold > 0 {
		c.success = p.SuccessThreshold
	}
	if p.FailureThreshold > 0 {
		c.failure = p.FailureThreshold
	}
	return c
}

// probe checks the instance once: an HTTP GET answered 2xx or 3xx, or a TCP connect when the
// template has no probe (always for a fixed upstream).
func (s *Supervisor) probe(ctx context.Context, in *instance, c probeConfig) error {
	s.mu.Lock()
	addr := in.info.Addr
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.http == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("readiness probe TCP %s: %w", addr, err)
		}
		conn.Close()
		return nil
	}
	path := c.http.Path
	if path == "" {
		path = "/"
	} else if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if c.http.Port != 0 {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("readiness probe GET %s: %w", path, err)
		}
		addr = net.JoinHostPort(host, strconv.Itoa(int(c.http.Port)))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("readiness probe GET %s: %w", path, err)
	}
	req.Header.Set("User-Agent", "ramp-probe")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("readiness probe GET %s: %w", path, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("readiness probe GET %s: %s", path, resp.Status)
	}
	return nil
}

func gracePeriod(t *v1alpha1.ProcessTemplate) time.Duration {
	if t == nil || t.TerminationGracePeriodSeconds == nil {
		return defaultGracePeriod
	}
	return time.Duration(*t.TerminationGracePeriodSeconds) * time.Second
}

func exitMessage(st *os.ProcessState) string {
	if st == nil {
		return "exited with unknown status"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + signalName(ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", st.ExitCode())
}

// update changes the instance's snapshot under the lock.
func (s *Supervisor) update(in *instance, f func(*Instance)) {
	s.mu.Lock()
	f(&in.info)
	s.mu.Unlock()
}

func (s *Supervisor) isDetached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detached
}

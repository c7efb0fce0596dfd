// Command rampprof is ramp with Go's profiler served at $RAMP_PPROF_ADDR (/debug/pprof/),
// for bench/scale -cpuprofile. Without the variable it is plain ramp.
package main

import (
	"log"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"

	"ramp.dev/ramp/internal/cli"
)

func main() {
	if addr := os.Getenv("RAMP_PPROF_ADDR"); addr != "" {
		go func() { log.Print(http.ListenAndServe(addr, nil)) }()
	}
	os.Exit(cli.Main(os.Args[1:]))
}

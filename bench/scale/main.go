// Command scale measures what ramp costs while nothing changes: the CPU of ramp's own process
// over a window in which every rollout is settled (Healthy, no change applied), and its
// resident memory per rollout.
//
//   - local mode: one `ramp serve` with -rollouts rollouts (200 by default), each with one
//     instance: a fixed upstream served by this program (-template upstream, the default) or a
//     child process of bench/upstream (-template process);
//   - Kubernetes mode: `ramp controller` on the control plane of test/k8senv (etcd,
//     kube-apiserver, kube-controller-manager, kube-scheduler, kwok), with -rollouts Rollouts
//     (1,000 by default) over as many Deployments of one pod each.
//
// ramp runs as its own process, built from ./cmd/ramp; its CPU is utime+stime of
// /proc/PID/stat over -seconds, after -warmup once all rollouts are settled, so other load on
// the machine does not count in it. Memory per rollout is (RSS settled - RSS with no rollout)
// / rollouts. -cpuprofile runs ramp with net/http/pprof (bench/scale/rampprof) and writes a
// CPU profile of the same window. Run from the repository root:
//
//	go run ./bench/scale -mode local -rollouts 200 -seconds 60
//	go run ./bench/scale -mode kubernetes -rollouts 1000 -seconds 60 -cpuprofile /tmp/kube.pprof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

var (
	mode       = flag.String("mode", "local", "local or kubernetes")
	rollouts   = flag.Int("rollouts", 0, "number of rollouts (0: 200 in local mode, 1000 in Kubernetes mode)")
	seconds    = flag.Int("seconds", 60, "length of the measurement window, in seconds")
	warmup     = flag.Duration("warmup", 15*time.Second, "wait between all rollouts settled and the window")
	settleWait = flag.Duration("settle-timeout", 10*time.Minute, "longest wait for all rollouts to settle")
	template   = flag.String("template", "upstream", "local mode's instances: upstream (fixed upstreams served by this program) or process (bench/upstream child processes)")
	cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of ramp over the window to this file")
	keep       = flag.Bool("keep", false, "keep the work folder (ramp's log, state, spec) and print where")
)

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime)
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	if *seconds <= 0 {
		return fmt.Errorf("-seconds: %d is not a positive number of seconds", *seconds)
	}
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run bench/scale from the repository root (go run ./bench/scale)")
	}
	switch *mode {
	case "local":
		if *rollouts == 0 {
			*rollouts = 200
		}
	case "kubernetes":
		if *rollouts == 0 {
			*rollouts = 1000
		}
	default:
		return fmt.Errorf("-mode: %q is not local or kubernetes", *mode)
	}
	if *rollouts < 1 {
		return fmt.Errorf("-rollouts: %d is not a positive number", *rollouts)
	}
	if *template != "upstream" && *template != "process" {
		return fmt.Errorf("-template: %q is not upstream or process", *template)
	}
	if *cpuProfile != "" {
		// Fail now rather than after the run.
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		f.Close()
	}
	dir, err := os.MkdirTemp("", "ramp-bench-scale-")
	if err != nil {
		return err
	}
	if *keep {
		defer log.Printf("work folder kept: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bin := filepath.Join(dir, "ramp")
	pkg := "./cmd/ramp"
	if *cpuProfile != "" {
		pkg = "./bench/scale/rampprof"
	}
	if err := goBuild(bin, pkg); err != nil {
		return err
	}
	var res *result
	if *mode == "local" {
		res, err = runLocal(ctx, dir, bin)
	} else {
		res, err = runKube(ctx, dir, bin)
	}
	if err != nil {
		return err
	}
	res.print(os.Stdout)
	return nil
}

func goBuild(out, pkg string) error {
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// result is what one run measured.
type result struct {
	mode     string
	rollouts int
	detail   string // what each rollout runs
	window   window
	baseRSS  int64 // bytes, settled with no rollout
	// counters is the change of ramp's own metrics over the window; gauges are their values
	// after it.
	counters, gauges []counter
	// others is the CPU of other processes over the same window (the control plane).
	others []otherCPU
	target float64 // cores
	load   [2]string
	// profileTop is `go tool pprof -top` of the window's profile, when taken.
	profileTop string
}

type counter struct {
	what  string
	value float64
	total float64 // since ramp started (counters only)
}

type otherCPU struct {
	name  string
	cores float64
	rss   int64
}

func (r *result) print(w io.Writer) {
	const mib = 1 << 20
	fmt.Fprintf(w, "\nscale, %s mode: %d rollouts (%s), %s window after settling, Go %s, %d CPUs\n",
		r.mode, r.rollouts, r.detail, r.window.wall.Round(time.Millisecond), runtime.Version(), runtime.NumCPU())
	fmt.Fprintf(w, "load average before / after: %s / %s\n\n", r.load[0], r.load[1])
	verdict := "met"
	if r.window.cores() > r.target {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "| measure | value |\n|---|---:|\n")
	fmt.Fprintf(w, "| ramp CPU while nothing changes | **%.4f core** (user %.4f, system %.4f); target ≤ %.2f: %s |\n",
		r.window.cores(), r.window.userCores(), r.window.sysCores(), r.target, verdict)
	fmt.Fprintf(w, "| ramp RSS, %d rollouts settled | %.1f MiB (peak %.1f MiB) |\n", r.rollouts, float64(r.window.rss)/mib, float64(r.window.hwm)/mib)
	fmt.Fprintf(w, "| ramp RSS, no rollout | %.1f MiB |\n", float64(r.baseRSS)/mib)
	per := float64(r.window.rss-r.baseRSS) / float64(r.rollouts)
	fmt.Fprintf(w, "| memory per rollout | **%.3f MiB** (%.0f KiB) |\n", per/mib, per/1024)
	fmt.Fprintf(w, "| ramp threads | %d |\n", r.window.threads)
	secs := r.window.wall.Seconds()
	for _, c := range r.counters {
		fmt.Fprintf(w, "| %s | %.0f in the window (%.1f/s); %.0f since start |\n", c.what, c.value, c.value/secs, c.total)
	}
	for _, c := range r.gauges {
		if c.value == math.Trunc(c.value) {
			fmt.Fprintf(w, "| %s | %.0f |\n", c.what, c.value)
		} else {
			fmt.Fprintf(w, "| %s | %.1f |\n", c.what, c.value)
		}
	}
	for _, o := range r.others {
		fmt.Fprintf(w, "| %s CPU (same window) | %.3f core, RSS %.0f MiB |\n", o.name, o.cores, float64(o.rss)/mib)
	}
	if r.profileTop != "" {
		fmt.Fprintf(w, "\nCPU profile of ramp over the window (go tool pprof -top):\n%s\n", r.profileTop)
	}
}

// window is ramp's CPU and memory over the measurement window.
type window struct {
	wall               time.Duration
	userTicks, sysTick uint64
	rss, hwm           int64
	threads            int
}

func (w window) cores() float64     { return w.userCores() + w.sysCores() }
func (w window) userCores() float64 { return float64(w.userTicks) / clockTicks / w.wall.Seconds() }
func (w window) sysCores() float64  { return float64(w.sysTick) / clockTicks / w.wall.Seconds() }

// measure watches pid for d and returns its CPU over that time and its memory at the end.
// metricsURL, when not empty, is read just before and just after the window (so that the
// scrapes' own cost falls outside it); profile, when not nil, runs over the window; others
// are more processes whose CPU to measure over the same window, by name.
func measure(ctx context.Context, pid int, d time.Duration, metricsURL string, profile func(context.Context, time.Duration) error, others map[string]int) (m measured, err error) {
	if metricsURL != "" {
		if m.before, err = fetchMetrics(metricsURL); err != nil {
			return m, fmt.Errorf("read ramp's metrics before the window: %w", err)
		}
	}
	otherStart := map[string]procStat{}
	for name, p := range others {
		if s, err := readStat(p); err == nil {
			otherStart[name] = s
		}
	}
	profDone := make(chan error, 1)
	if profile != nil {
		go func() { profDone <- profile(ctx, d) }()
	}
	start := time.Now()
	s0, err := readStat(pid)
	if err != nil {
		return m, err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return m, ctx.Err()
	}
	s1, err := readStat(pid)
	if err != nil {
		return m, fmt.Errorf("ramp ended during the window: %w", err)
	}
	wall := time.Since(start)
	for _, name := range sortedKeys(others) {
		p := others[name]
		s, err := readStat(p)
		if err != nil {
			continue
		}
		if s0, ok := otherStart[name]; ok {
			mem, _ := readMem(p)
			m.others = append(m.others, otherCPU{name: name, cores: float64(s.utime+s.stime-s0.utime-s0.stime) / clockTicks / wall.Seconds(), rss: mem.rss})
		}
	}
	mem, err := readMem(pid)
	if err != nil {
		return m, err
	}
	m.window = window{wall: wall, userTicks: s1.utime - s0.utime, sysTick: s1.stime - s0.stime, rss: mem.rss, hwm: mem.hwm, threads: s1.threads}
	if profile != nil {
		if err := <-profDone; err != nil {
			return m, fmt.Errorf("CPU profile: %w", err)
		}
	}
	if metricsURL != "" {
		if m.after, err = fetchMetrics(metricsURL); err != nil {
			return m, fmt.Errorf("read ramp's metrics after the window: %w", err)
		}
	}
	return m, nil
}

// measured is what measure saw.
type measured struct {
	window        window
	before, after []sample // ramp's metrics
	others        []otherCPU
}

// counter is the change of a counter over the window, and its value after it.
func (m measured) counter(what, name string, labels ...string) counter {
	after := sumMetric(m.after, name, labels...)
	return counter{what: what, value: after - sumMetric(m.before, name, labels...), total: after}
}

// pprofProfile fetches a CPU profile of d from ramp's pprof address into *cpuProfile.
func pprofProfile(addr string) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Timeout: d + time.Minute}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s: %s %s", url, resp.Status, b)
		}
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
}

// profileTop summarizes the profile written to *cpuProfile.
func profileTop(bin string) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", bin, *cpuProfile).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof: %v\n%s", err, out)
	}
	return fmt.Sprintf("(profile in %s)\n%s", *cpuProfile, out)
}

// profileEnv is the environment of a ramp started by the bench: with -cpuprofile, the
// address rampprof serves pprof on.
func profileEnv() (env []string, addr string, err error) {
	env = os.Environ()
	if *cpuProfile == "" {
		return env, "", nil
	}
	if addr, err = freeAddr(); err != nil {
		return nil, "", err
	}
	return append(env, "RAMP_PPROF_ADDR="+addr), addr, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// freeAddrs returns n distinct free loopback addresses: all are held open until all are
// found, so none is returned twice.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// waitUntil calls cond every interval until it returns true, an error, or within passes.
func waitUntil(ctx context.Context, what string, within, interval time.Duration, cond func() (bool, string, error)) error {
	deadline := time.Now().Add(within)
	last := ""
	for {
		ok, state, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if state != last {
			log.Printf("waiting for %s: %s", what, state)
			last = state
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s; last: %s", what, within, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval): // a poll interval, bounded by the deadline above
		}
	}
}

// startRamp starts bin with args, its output in logFile; stop ends it with SIGTERM.
func startRamp(bin string, env []string, logFile string, args ...string) (cmd *exec.Cmd, stop func(), err error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, nil, err
	}
	cmd = exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	return cmd, stop, nil
}

// exited reports whether cmd's process has ended (its /proc entry gone or a zombie).
func exited(pid int) bool {
	s, err := readStat(pid)
	return err != nil || s.state == 'Z'
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

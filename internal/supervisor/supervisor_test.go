package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// The test binary doubles as the child program: with SUPERVISOR_TEST_CHILD set it acts as
// one instance instead of running the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SUPERVISOR_TEST_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child modes: serve (healthy, exits on SIGTERM), unready (/healthz answers 503), slowstop
// (ignores SIGTERM), crash (exits 2 at once), sleep (does nothing). Every mode but sleep
// checks that $(PORT) was replaced in its arguments.
func child(mode string) int {
	if mode == "sleep" {
		time.Sleep(time.Hour)
		return 0
	}
	port := os.Getenv("PORT")
	if !slices.Contains(os.Args[1:], "--port="+port) {
		fmt.Fprintln(os.Stderr, "no --port="+port+" in", os.Args)
		return 3
	}
	if mode == "crash" {
		fmt.Fprintln(os.Stderr, "crashing on purpose")
		return 2
	}
	if os.Getenv("SUPERVISOR_TEST_BURN") != "" {
		for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
		}
	}
	if mode == "slowstop" {
		signal.Ignore(syscall.SIGTERM)
	}
	health := http.StatusOK
	if mode == "unready" {
		health = http.StatusServiceUnavailable
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(health) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "pid %d", os.Getpid()) })
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	fmt.Println("serving on", port)
	if mode == "latecrash" {
		time.Sleep(time.Second)
		for i := 1; i <= 7; i++ {
			fmt.Fprintf(os.Stderr, "line %d before the crash\n", i)
		}
		fmt.Fprintln(os.Stderr, "panic: token "+os.Getenv("SUPERVISOR_TEST_SECRET")+" rejected "+strings.Repeat("x", 300))
		return 5
	}
	if mode == "slowstop" {
		time.Sleep(time.Hour)
		return 0
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return 0
}

func childTemplate(mode string, grace int32, env ...v1alpha1.EnvVar) v1alpha1.Template {
	return v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{
		Command:                       os.Args[0],
		Args:                          []string{"--port=$(PORT)"},
		Env:                           append([]v1alpha1.EnvVar{{Name: "SUPERVISOR_TEST_CHILD", Value: mode}}, env...),
		ReadinessProbe:                &v1alpha1.Probe{HTTPGet: v1alpha1.HTTPGetAction{Path: "/healthz"}},
		TerminationGracePeriodSeconds: &grace,
	}}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline above
	}
}

// logBuf is the supervisor's log, read by the test.
type logBuf struct{ testkit.SyncBuffer }

// hasLine says some log line contains all of parts.
func (l *logBuf) hasLine(parts ...string) bool {
	for line := range strings.SplitSeq(l.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// drainLog records the Drain calls.
type drainLog struct {
	mu    sync.Mutex
	calls []drainCall
}

type drainCall struct {
	inst Instance
	// served says the instance still answered HTTP when Drain was called, so no stop signal
	// had been sent yet.
	served bool
}

func (d *drainLog) drain(ctx context.Context, inst Instance) {
	served := false
	if inst.PID != 0 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+inst.Addr+"/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			served = string(b) == fmt.Sprintf("pid %d", inst.PID)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, drainCall{inst, served})
}

func (d *drainLog) get() []drainCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

type fixture struct {
	s      *Supervisor
	logs   *logBuf
	drains *drainLog
	dir    string
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{logs: &logBuf{}, drains: &drainLog{}, dir: opts.StateDir}
	if f.dir == "" {
		f.dir = t.TempDir()
	}
	opts.StateDir = f.dir
	opts.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	opts.Drain = f.drains.drain
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("supervisor log:\n%s", f.logs)
		}
	})
	return f
}

// list returns the instances of revision rev of rollout "app".
func (f *fixture) list(rev int64) []Instance { return f.s.Instances("app")[rev] }

func count(list []Instance, cond func(Instance) bool) int {
	n := 0
	for _, i := range list {
		if cond(i) {
			n++
		}
	}
	return n
}

func ready(i Instance) bool { return i.Ready && !i.Terminating }

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestScaleUpAndDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	tmpl := childTemplate("serve", 30)
	f.s.Scale("app", 1, tmpl, 3)
	select {
	case <-f.s.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled after Scale")
	}
	waitFor(t, 10*time.Second, "3 ready instances", func() bool { return count(f.list(1), ready) == 3 })

	ports := map[string]bool{}
	for _, in := range f.list(1) {
		if ports[in.Addr] {
			t.Errorf("two instances on %s", in.Addr)
		}
		ports[in.Addr] = true
		if want := fmt.Sprintf("pid %d", in.PID); get(t, "http://"+in.Addr+"/") != want {
			t.Errorf("instance %s does not answer %q", in.ID, want)
		}
		if in.ReadySince.IsZero() || in.StartedAt.IsZero() || in.Message != "" {
			t.Errorf("ready instance %+v", in)
		}
	}

	f.s.Scale("app", 1, tmpl, 1)
	terminating := count(f.list(1), func(i Instance) bool { return i.Terminating })
	if terminating != 2 {
		t.Errorf("right after Scale down: %d terminating instances, want 2", terminating)
	}
	waitFor(t, 10*time.Second, "1 instance left", func() bool { return len(f.list(1)) == 1 })
	if left := f.list(1)[0]; left.ID != "app-r1-1" || !ready(left) {
		t.Errorf("left instance %+v, want app-r1-1 ready (newest stopped first)", left)
	}
	calls := f.drains.get()
	var drained []string
	for _, c := range calls {
		drained = append(drained, c.inst.ID)
		if !c.served || !c.inst.Terminating {
			t.Errorf("drain of %s: served=%v terminating=%v, want both (drain before the stop signal)",
				c.inst.ID, c.served, c.inst.Terminating)
		}
	}
	slices.Sort(drained)
	if want := []string{"app-r1-2", "app-r1-3"}; !slices.Equal(drained, want) {
		t.Errorf("drained %v, want %v", drained, want)
	}
	for _, id := range drained {
		if !f.logs.hasLine("instance stopped", "instance="+id, `status="exited with status 0"`) {
			t.Errorf("no log that %s stopped with status 0", id)
		}
	}
	if !f.logs.hasLine("serving on", "stream=stdout", "instance=app-r1-1", "rollout=app", "revision=1") {
		t.Error("child stdout not logged")
	}
}

func TestScaleDownStopsNotReadyFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.s.Scale("app", 1, childTemplate("unready", 30), 1)
	f.s.Scale("app", 1, childTemplate("serve", 30), 3)
	waitFor(t, 10*time.Second, "2 ready instances", func() bool { return count(f.list(1), ready) == 2 })
	f.s.Scale("app", 1, childTemplate("serve", 30), 2)
	waitFor(t, 10*time.Second, "2 instances left", func() bool { return len(f.list(1)) == 2 })
	var ids []string
	for _, in := range f.list(1) {
		ids = append(ids, in.ID)
	}
	if want := []string{"app-r1-2", "app-r1-3"}; !slices.Equal(ids, want) {
		t.Errorf("left %v, want %v (the not-ready app-r1-1 stopped)", ids, want)
	}
}

func TestCrashLoop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tmpl    v1alpha1.Template
		message string // prefix
	}{
		{"exits at once", childTemplate("crash", 30), "exited with status 2"},
		{"cannot start", v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{Command: "/nonexistent/program"}}, "start: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{RestartBackoff: 20 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond})
			f.s.Scale("app", 1, tt.tmpl, 1)
			var last Instance
			waitFor(t, 10*time.Second, "a crash-looping instance", func() bool {
				l := f.list(1)
				if len(l) != 1 {
					return false
				}
				last = l[0]
				if last.Ready {
					t.Fatalf("crashing instance ready: %+v", last)
				}
				return last.Restarts >= 3 && last.CrashLooping && strings.HasPrefix(last.Message, tt.message)
			})
		})
	}
}

func TestCrashLogsChildStderr(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{RestartBackoff: 20 * time.Millisecond})
	f.s.Scale("app", 1, childTemplate("crash", 30), 1)
	waitFor(t, 10*time.Second, "the child's stderr in the log", func() bool {
		return f.logs.hasLine("crashing on purpose", "stream=stderr", "instance=app-r1-1")
	})
	waitFor(t, 10*time.Second, "the exit in the log", func() bool {
		return f.logs.hasLine("instance exited", `status="exited with status 2"`)
	})
}

func TestExitOfAReadyInstanceIsCountedWithItsStderr(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{RestartBackoff: 20 * time.Millisecond})
	// A process that is ready, then exits a second later: far from a crash loop, but an exit.
	f.s.Scale("app", 1, childTemplate("latecrash", 30, v1alpha1.EnvVar{Name: "SUPERVISOR_TEST_SECRET", Value: "hunter2-secret"}), 1)
	var got Instance
	waitFor(t, 15*time.Second, "an exit counted", func() bool {
		l := f.list(1)
		if len(l) == 1 {
			got = l[0]
		}
		return len(l) == 1 && l[0].Exits >= 1
	})
	if got.CrashLooping || got.CreatedAt.IsZero() || got.LastExit != "exited with status 5" {
		t.Fatalf("after one late exit: %+v", got)
	}
	if len(got.ExitStderr) != stderrTailLines {
		t.Fatalf("stderr tail %q, want the last %d lines", got.ExitStderr, stderrTailLines)
	}
	if got.ExitStderr[0] != "line 4 before the crash" {
		t.Fatalf("stderr tail starts %q, want line 4", got.ExitStderr[0])
	}
	last := got.ExitStderr[len(got.ExitStderr)-1]
	if !strings.HasPrefix(last, "panic: token *** rejected xxx") || strings.Contains(last, "hunter2") || len(last) > stderrTailBytes+len("…") {
		t.Fatalf("last stderr line %q: want the secret hidden and the line cut at %d bytes", last, stderrTailBytes)
	}
	tot := f.s.Totals("app")[1]
	if tot.Exits < 1 || tot.ProbeFailures < 0 || tot.Instances != 1 {
		t.Fatalf("totals %+v", tot)
	}
	// A stop by ramp is no exit of the instance's own.
	before := tot.Exits
	f.s.Scale("app", 1, childTemplate("latecrash", 30), 0)
	waitFor(t, 15*time.Second, "the instance gone", func() bool { return len(f.list(1)) == 0 })
	if after := f.s.Totals("app")[1]; after.Exits < before || after.Instances != 0 {
		t.Fatalf("totals after the instance is gone: %+v, had %d exits", after, before)
	}
}

func TestNeverReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.s.Scale("app", 1, childTemplate("unready", 30), 1)
	waitFor(t, 10*time.Second, "5 failed probes in a row", func() bool {
		l := f.list(1)
		if len(l) != 1 {
			return false
		}
		if l[0].Ready {
			t.Fatalf("instance answering 503 is ready: %+v", l[0])
		}
		return l[0].ConsecutiveFailures >= 5 && l[0].Message == "readiness probe GET /healthz: 503 Service Unavailable"
	})
	// Start-up probes that fail before the first success are not readiness failures: a
	// healthy canary judged on readiness-failures < 1 must not fail for its start-up.
	if n := f.list(1)[0].ReadinessFailures; n != 0 {
		t.Fatalf("readiness failures %d of a process never ready, want 0 (start-up)", n)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mode       string
		grace      int32
		stopSignal string
		status     string
		min, max   time.Duration
	}{
		{"exits on SIGTERM", "serve", 30, "", "exited with status 0", 0, 10 * time.Second},
		{"ignores SIGTERM", "slowstop", 1, "", "killed by signal SIGKILL", time.Second, 10 * time.Second},
		{"stop signal", "serve", 30, "SIGHUP", "killed by signal SIGHUP", 0, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Options{})
			tmpl := childTemplate(tt.mode, tt.grace)
			tmpl.Process.StopSignal = tt.stopSignal
			f.s.Scale("app", 1, tmpl, 1)
			waitFor(t, 10*time.Second, "a ready instance", func() bool { return count(f.list(1), ready) == 1 })
			pid := f.list(1)[0].PID
			start := time.Now()
			f.s.Scale("app", 1, tmpl, 0)
			waitFor(t, 15*time.Second, "no instance", func() bool { return len(f.list(1)) == 0 })
			took := time.Since(start)
			if took < tt.min || took > tt.max {
				t.Errorf("stop took %s, want between %s and %s", took, tt.min, tt.max)
			}
			if !f.logs.hasLine("instance stopped", "instance=app-r1-1", fmt.Sprintf("status=%q", tt.status)) {
				t.Errorf("no log that the instance stopped with %q", tt.status)
			}
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("process %d still exists", pid)
			}
		})
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.s.Scale("app", 1, childTemplate("serve", 30), 2)
	f.s.Scale("other", 4, childTemplate("serve", 30), 1)
	waitFor(t, 10*time.Second, "3 ready instances", func() bool {
		return count(f.list(1), ready) == 2 && count(f.s.Instances("other")[4], ready) == 1
	})
	if got := readState(t, f.dir); len(got) != 3 {
		t.Errorf("instances.json lists %d children, want 3", len(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.drains.get()); n != 3 {
		t.Errorf("%d drains, want 3", n)
	}
	if len(f.s.Instances("app"))+len(f.s.Instances("other")) != 0 {
		t.Error("instances left after Close")
	}
	if got := readState(t, f.dir); len(got) != 0 {
		t.Errorf("instances.json lists %v after Close", got)
	}
	f.s.Scale("app", 1, childTemplate("serve", 30), 1)
	if len(f.s.Instances("app")) != 0 {
		t.Error("Scale after Close started an instance")
	}
}

func readState(t *testing.T, dir string) []stateEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	var e []stateEntry
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// alive says pid exists and is not a zombie.
func alive(pid int) bool {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return false
	}
	st, err := p.Stat()
	return err == nil && st.State != "Z"
}

func TestRecoveryKillsLeftChildren(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, err := New(Options{StateDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	old.Scale("app", 1, childTemplate("serve", 30), 1)
	waitFor(t, 10*time.Second, "a ready instance", func() bool { return count(old.Instances("app")[1], ready) == 1 })
	pid := old.Instances("app")[1][0].PID
	old.Detach()
	if !alive(pid) {
		t.Fatalf("child %d died on Detach", pid)
	}
	if st := readState(t, dir); len(st) != 1 || st[0].PID != pid || st[0].StartTime == 0 {
		t.Fatalf("instances.json after Detach: %+v", st)
	}

	f := newFixture(t, Options{StateDir: dir}) // New kills the child before returning
	if alive(pid) {
		t.Errorf("child %d of the previous supervisor still alive", pid)
	}
	if !f.logs.hasLine("kill instance left by a previous ramp", "instance=app-r1-1") {
		t.Error("no log of the kill")
	}
	if st := readState(t, dir); len(st) != 0 {
		t.Errorf("instances.json after recovery: %+v", st)
	}
}

func TestRecoverySparesReusedPID(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SUPERVISOR_TEST_CHILD=sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	p, err := procfs.NewProc(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	entries := []stateEntry{{ID: "app-r1-1", Rollout: "app", Revision: 1, PID: cmd.Process.Pid, PGID: cmd.Process.Pid,
		Addr: "127.0.0.1:1", StartTime: st.Starttime + 1}}
	if err := writeFileAtomic(filepath.Join(dir, stateFile), entries); err != nil {
		t.Fatal(err)
	}
	newFixture(t, Options{StateDir: dir})
	if !alive(cmd.Process.Pid) {
		t.Error("a process whose start time differs from the recorded one was killed")
	}
}

func TestUpstreams(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	up := strings.TrimPrefix(srv.URL, "http://")

	f := newFixture(t, Options{})
	tmpl := v1alpha1.Template{Upstreams: []string{up, down}}
	f.s.Scale("app", 2, tmpl, 1)
	waitFor(t, 10*time.Second, "the live upstream ready, the other failing", func() bool {
		l := f.list(2)
		return len(l) == 2 && ready(l[0]) && l[1].ConsecutiveFailures >= 2
	})
	l0, l1 := f.list(2)[0], f.list(2)[1]
	if l0.Addr != up || l0.PID != 0 || l0.ID != "app-r2-1" {
		t.Errorf("upstream instance %+v", l0)
	}
	if l1.Addr != down || l1.Ready || !strings.HasPrefix(l1.Message, "readiness probe TCP "+down) {
		t.Errorf("down upstream instance %+v", l1)
	}

	f.s.Scale("app", 2, tmpl, 0)
	waitFor(t, 5*time.Second, "no instance", func() bool { return len(f.list(2)) == 0 })
	if n := len(f.drains.get()); n != 2 {
		t.Errorf("%d drains, want 2", n)
	}
}

func TestResourceUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.s.Scale("app", 1, childTemplate("serve", 30, v1alpha1.EnvVar{Name: "SUPERVISOR_TEST_BURN", Value: "1"}), 1)
	waitFor(t, 10*time.Second, "CPU and memory use", func() bool {
		l := f.list(1)
		return len(l) == 1 && l[0].CPUSeconds > 0 && l[0].MemoryBytes > 0
	})
	waitFor(t, 10*time.Second, "CPU and memory in the revision's totals", func() bool {
		tot := f.s.Totals("app")[1]
		return tot.CPUSeconds > 0 && tot.MemoryBytes > 0 && tot.Instances == 1
	})
}

func TestStopByIDThenScaleReplacesThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	tmpl := childTemplate("serve", 30)
	f.s.Scale("app", 1, tmpl, 2)
	waitFor(t, 10*time.Second, "2 ready instances", func() bool { return count(f.list(1), ready) == 2 })

	// A restart stops app-r1-1 by its ID (an unknown ID is ignored); Scale at the same count
	// then starts a replacement rather than keeping one instance fewer.
	f.s.Stop("app", []string{"app-r1-1", "app-r9-9"})
	if in := f.list(1)[0]; in.ID != "app-r1-1" || !in.Terminating {
		t.Fatalf("right after Stop: %+v, want app-r1-1 terminating", in)
	}
	f.s.Scale("app", 1, tmpl, 2)
	waitFor(t, 10*time.Second, "app-r1-2 and a new app-r1-3, ready", func() bool {
		var ids []string
		for _, in := range f.list(1) {
			if ready(in) {
				ids = append(ids, in.ID)
			}
		}
		return len(f.list(1)) == 2 && slices.Equal(ids, []string{"app-r1-2", "app-r1-3"})
	})
	calls := f.drains.get()
	if len(calls) != 1 || calls[0].inst.ID != "app-r1-1" || !calls[0].served {
		t.Errorf("drains %+v, want app-r1-1 drained while it still served", calls)
	}
}

// Changed names the rollouts whose instances changed, once each, and "" after Close.
func TestChangedNamesTheRollouts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	tmpl := childTemplate("serve", 30)
	f.s.Scale("app", 1, tmpl, 1)
	f.s.Scale("other", 1, tmpl, 1)
	waitFor(t, 10*time.Second, "both instances ready", func() bool {
		return count(f.list(1), ready) == 1 && count(f.s.Instances("other")[1], ready) == 1
	})
	got := f.s.Changed()
	slices.Sort(got)
	if want := []string{"app", "other"}; !slices.Equal(got, want) {
		t.Fatalf("Changed = %v, want %v", got, want)
	}
	if got := f.s.Changed(); len(got) != 0 {
		t.Errorf("Changed again with nothing changed = %v, want none", got)
	}
	f.s.Stop("app", []string{f.list(1)[0].ID})
	if got := f.s.Changed(); !slices.Contains(got, "app") || slices.Contains(got, "other") {
		t.Errorf("after stopping an instance of app: Changed = %v, want app only", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.s.Changed(); !slices.Contains(got, "") {
		t.Errorf("after Close: Changed = %v, want \"\" (every rollout)", got)
	}
}

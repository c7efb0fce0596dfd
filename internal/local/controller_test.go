package local

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/store"
	"ramp.dev/ramp/internal/supervisor"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// After never fires: the tests step the controller themselves (stepDue).
func (c *fakeClock) After(time.Duration) <-chan time.Time { return nil }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// fakeInstances is a supervisor whose instances are ready as soon as they are started.
type fakeInstances struct {
	mu      sync.Mutex
	clock   *fakeClock
	revs    map[string]map[int64][]supervisor.Instance
	seq     int
	changes chan struct{}
	changed map[string]bool
	// observed counts the calls of Instances by rollout: one per decision.
	observed map[string]int
	// addr, when set, gives the address of a revision's new instances (else 127.0.0.1:1).
	addr func(rev int64) string
	// onStop, when set, is called as instances are about to be stopped, without the lock.
	onStop func(rollout string, rev int64, n int)
}

func newFakeInstances(clock *fakeClock) *fakeInstances {
	return &fakeInstances{clock: clock, revs: map[string]map[int64][]supervisor.Instance{}, changes: make(chan struct{}, 1), changed: map[string]bool{}, observed: map[string]int{}}
}

func (f *fakeInstances) Instances(rollout string) map[int64][]supervisor.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observed[rollout]++
	out := map[int64][]supervisor.Instance{}
	for rev, list := range f.revs[rollout] {
		out[rev] = slices.Clone(list)
	}
	return out
}

func (f *fakeInstances) Scale(rollout string, rev int64, _ v1alpha1.Template, n int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revs[rollout] == nil {
		f.revs[rollout] = map[int64][]supervisor.Instance{}
	}
	list := f.revs[rollout][rev]
	changed := len(list) != int(n)
	if stopping := len(list) - int(n); stopping > 0 && f.onStop != nil {
		f.mu.Unlock()
		f.onStop(rollout, rev, stopping)
		f.mu.Lock()
	}
	for len(list) < int(n) {
		f.seq++
		now := f.clock.Now()
		addr := "127.0.0.1:1"
		if f.addr != nil {
			addr = f.addr(rev)
		}
		list = append(list, supervisor.Instance{ID: fmt.Sprintf("%s-%d-%d", rollout, rev, f.seq), Rollout: rollout, Revision: rev,
			Addr: addr, Ready: true, ReadySince: now, StartedAt: now, CreatedAt: now})
	}
	list = list[:n]
	if n == 0 {
		delete(f.revs[rollout], rev)
	} else {
		f.revs[rollout][rev] = list
	}
	if changed {
		f.changed[rollout] = true
		select {
		case f.changes <- struct{}{}:
		default:
		}
	}
}

func (f *fakeInstances) Stop(string, []string) {}

func (f *fakeInstances) Totals(string) map[int64]supervisor.RevisionTotals { return nil }

func (f *fakeInstances) Changes() <-chan struct{} { return f.changes }

func (f *fakeInstances) Changed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Collect(maps.Keys(f.changed))
	clear(f.changed)
	return out
}

// touch says that an instance of rollout changed (became unready and ready again, say).
func (f *fakeInstances) touch(rollout string) {
	f.mu.Lock()
	f.changed[rollout] = true
	f.mu.Unlock()
}

// running is how many instances each revision of rollout runs.
func (f *fakeInstances) running(rollout string) map[int64]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int64]int{}
	for rev, list := range f.revs[rollout] {
		out[rev] = len(list)
	}
	return out
}

func (f *fakeInstances) decisions(rollout string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.observed[rollout]
}

type harness struct {
	t     *testing.T
	c     *Controller
	clock *fakeClock
	sup   *fakeInstances
	store *store.Store
	// addrs are the rollouts' listen addresses, by name.
	addrs map[string]string
	// judge is spec.strategy.canary.judge.enabled.
	judge bool
}

func newHarness(t *testing.T, tick time.Duration) *harness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), DBFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)}
	sup := newFakeInstances(clock)
	c := newController(deps{store: st, sup: sup, clock: clock, tick: tick, log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(c.proxies.shutdown)
	t.Cleanup(c.measure.Close)
	return &harness{t: t, c: c, clock: clock, sup: sup, store: st, addrs: map[string]string{}, judge: true}
}

// apply applies a rollout named name running command with the given canary steps.
func (h *harness) apply(name, command, steps string) {
	h.t.Helper()
	if h.addrs[name] == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			h.t.Fatal(err)
		}
		h.addrs[name] = ln.Addr().String()
		ln.Close()
	}
	b, err := spec.Load([]byte(fmt.Sprintf(`apiVersion: ramp.dev/v1alpha1
kind: Rollout
metadata:
  name: %s
spec:
  replicas: 2
  listen: %s
  template:
    process:
      command: %s
  strategy:
    canary:
      scaleDownDelaySeconds: 60
      judge: {enabled: %t}
      steps:
%s`, name, h.addrs[name], command, h.judge, steps)))
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.c.ApplyBundle(context.Background(), b); err != nil {
		h.t.Fatal(err)
	}
}

// settle steps what is due, as the loop does, until nothing is due before the clock moves.
func (h *harness) settle() {
	h.t.Helper()
	for range 50 {
		select {
		case <-h.sup.changes:
			h.c.instancesChanged()
		default:
		}
		next := h.c.stepDue(context.Background())
		if len(h.sup.changes) == 0 && next.After(h.clock.Now()) {
			return
		}
	}
	h.t.Fatal("the controller never settled: something is always due")
}

// advance moves the clock by d, a second at a time, stepping what is due after each move
// (and once at once when d is 0), and returns how many times the named rollout was decided.
func (h *harness) advance(name string, d time.Duration) int {
	before := h.sup.decisions(name)
	for {
		s := min(d, time.Second)
		h.clock.advance(s)
		d -= s
		h.c.stepDue(context.Background())
		if d <= 0 {
			return h.sup.decisions(name) - before
		}
	}
}

func (h *harness) get(name string) *v1alpha1.Rollout {
	h.t.Helper()
	r, err := h.store.GetRollout(name)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) reasons(name string) []string {
	h.t.Helper()
	events, err := h.store.Events(name, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, e.Reason)
	}
	return out
}

// expect fails the test unless the rollout is in phase at stable revision stable with the
// canary weight weight.
func (h *harness) expect(name string, phase v1alpha1.RolloutPhase, stable int64, weight int32) *v1alpha1.Rollout {
	h.t.Helper()
	r := h.get(name)
	if st := r.Status; st.Phase != phase || st.StableRevision != stable || st.CanaryWeight != weight {
		h.t.Fatalf("%s: %s, stable %d, weight %d (%s); want %s, stable %d, weight %d", name, st.Phase, st.StableRevision, st.CanaryWeight, st.Message, phase, stable, weight)
	}
	return r
}

// expectRunning fails the test unless each revision of the rollout runs as many instances as
// want says.
func (h *harness) expectRunning(name string, want map[int64]int) {
	h.t.Helper()
	if got := h.sup.running(name); !maps.Equal(got, want) {
		h.t.Fatalf("%s: instances by revision %v, want %v", name, got, want)
	}
}

const timedSteps = `      - setWeight: 20
      - pause: {duration: 30s}
      - setWeight: 50
      - pause: {duration: 30s}
`

func TestCanaryStepsThroughItsWeightsAndPromotes(t *testing.T) {
	h := newHarness(t, 0)
	// Given revision 1 stable
	h.apply("app", "v1", timedSteps)
	h.settle()
	h.expect("app", v1alpha1.PhaseHealthy, 1, 0)
	// When v2 is applied, it steps through 20% and 50%, 30s each
	h.apply("app", "v2", timedSteps)
	h.settle()
	for _, want := range []int32{20, 50} {
		if r := h.expect("app", v1alpha1.PhasePaused, 1, want); r.Status.CanaryRevision != 2 {
			t.Fatalf("at %d%%: canary revision %d, want 2", want, r.Status.CanaryRevision)
		}
		h.expectRunning("app", map[int64]int{1: 2, 2: 1})
		h.clock.advance(30 * time.Second)
		h.settle()
	}
	// Then it is promoted, and revision 1 runs through the watch window only
	h.expect("app", v1alpha1.PhaseHealthy, 2, 0)
	h.expectRunning("app", map[int64]int{1: 2, 2: 2})
	h.clock.advance(60 * time.Second)
	h.settle()
	h.expectRunning("app", map[int64]int{2: 2})
	if got := h.reasons("app"); !slices.Contains(got, "RolloutCompleted") {
		t.Errorf("events %v: no RolloutCompleted", got)
	}
}

func TestAbortSendsTrafficBackToStable(t *testing.T) {
	h := newHarness(t, 0)
	h.apply("app", "v1", timedSteps)
	h.settle()
	h.apply("app", "v2", "      - setWeight: 20\n      - pause: {}\n")
	h.settle()
	h.expect("app", v1alpha1.PhasePaused, 1, 20)
	// When the user aborts, the next step (woken by the command) carries it out
	if _, err := h.c.Abort(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.expect("app", v1alpha1.PhaseDegraded, 1, 0)
	h.expectRunning("app", map[int64]int{1: 2})
	if got := h.reasons("app"); !slices.Contains(got, "AbortRequested") || !slices.Contains(got, "RolloutAborted") {
		t.Errorf("events %v: want AbortRequested and RolloutAborted", got)
	}
}

// A rollout is decided again at its engine Requeue time, at once on a command, and not in
// between; another rollout's wake-up does not decide it.
func TestRolloutIsDecidedAtItsRequeueTime(t *testing.T) {
	h := newHarness(t, time.Hour) // no safety tick within the test
	h.judge = false               // a judge run is stepped every second
	h.apply("app", "v1", timedSteps)
	h.apply("other", "v1", timedSteps)
	h.settle()
	h.apply("app", "v2", timedSteps)
	h.settle()
	if r := h.get("app"); r.Status.CanaryWeight != 20 {
		t.Fatalf("want the 30s pause at 20%%: weight %d (%s)", r.Status.CanaryWeight, r.Status.Message)
	}
	start := h.clock.Now()
	if next := h.c.wake.next(h.c.tick); !next.Equal(start.Add(30 * time.Second)) {
		t.Errorf("next wake-up at %s, want the end of the pause %s", next, start.Add(30*time.Second))
	}
	other := h.sup.decisions("other")
	if n := h.advance("app", 29*time.Second); n != 0 {
		t.Fatalf("decided %d times in the 29s before its Requeue, want none", n)
	}
	if n := h.advance("app", time.Second); n != 1 {
		t.Fatalf("decided %d times at its Requeue, want once", n)
	}
	h.expect("app", v1alpha1.PhasePaused, 1, 50)
	if n := h.sup.decisions("other") - other; n != 0 {
		t.Errorf("the other rollout was decided %d times, want none", n)
	}
	// A command wakes its rollout at once.
	if _, err := h.c.Pause(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	if n := h.advance("app", 0); n != 1 {
		t.Errorf("decided %d times after a command, want once", n)
	}
	// A change of its instances wakes it, and not the other rollout.
	other = h.sup.decisions("other")
	h.sup.touch("app")
	h.c.instancesChanged()
	if n := h.advance("app", 0); n != 1 {
		t.Errorf("decided %d times after a change of its instances, want once", n)
	}
	if n := h.sup.decisions("other") - other; n != 0 {
		t.Errorf("the other rollout was decided %d times after a change of app's instances, want none", n)
	}
}

// The safety tick steps every rollout even when nothing asks for it.
func TestSafetyTickStepsEveryRollout(t *testing.T) {
	h := newHarness(t, 5*time.Second)
	h.apply("app", "v1", timedSteps)
	h.settle()
	if n := h.advance("app", 4*time.Second); n != 0 {
		t.Fatalf("a healthy rollout was decided %d times before the tick", n)
	}
	if n := h.advance("app", time.Second); n != 1 {
		t.Fatalf("decided %d times at the tick, want once", n)
	}
}

// Instances leave the proxy's table before they are stopped: when an abort stops the canary,
// requests that arrive while its instances go away are already sent to stable.
func TestInstancesLeaveTheProxyBeforeTheyStop(t *testing.T) {
	h := newHarness(t, 0)
	servers := map[int64]*httptest.Server{}
	for _, rev := range []int64{1, 2} {
		servers[rev] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "revision %d", rev) }))
		t.Cleanup(servers[rev].Close)
	}
	h.sup.addr = func(rev int64) string { return servers[rev].Listener.Addr().String() }
	var stopped []string
	h.sup.onStop = func(rollout string, rev int64, n int) {
		// What a request gets while these instances stop.
		for range 10 {
			rec := httptest.NewRecorder()
			h.c.proxies.get(rollout).p.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if got := rec.Body.String(); rec.Code != http.StatusOK || got == fmt.Sprintf("revision %d", rev) {
				stopped = append(stopped, fmt.Sprintf("%d %q while revision %d stops", rec.Code, got, rev))
			}
		}
	}
	h.apply("app", "v1", timedSteps)
	h.settle()
	h.apply("app", "v2", "      - setWeight: 50\n      - pause: {}\n")
	h.settle()
	h.expect("app", v1alpha1.PhasePaused, 1, 50)
	if _, err := h.c.Abort(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.expect("app", v1alpha1.PhaseDegraded, 1, 0)
	if h.sup.running("app")[2] != 0 {
		t.Fatalf("revision 2 still runs: %v", h.sup.running("app"))
	}
	if len(stopped) > 0 {
		t.Errorf("requests reached stopping instances: %v", stopped)
	}
}

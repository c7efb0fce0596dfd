// Package supervisor runs the instances of each revision of each rollout in local mode: it
// starts them as child processes (or probes fixed upstream addresses that something else
// started), probes their readiness, restarts the ones that crash, stops them gracefully, and
// reports their health and resource use. It keeps StateDir/instances.json so that a ramp that
// was killed outright can kill the children it left behind when it starts again.
//
// Each child runs in its own process group on a free port of 127.0.0.1 (given as PORT and as
// $(PORT) in its arguments); its stdout and stderr go to the logger line by line. Readiness is
// probed as api/v1alpha1 documents it, except that until an instance is ready for the first
// time after a (re)start it is probed every 100ms rather than every period, so a new instance
// takes traffic as soon as it can. A template without a probe, and every fixed upstream, is
// probed by a TCP connect. CPU time and resident memory are read from /proc at each probe (for
// the child itself, not its own children). Each exit of a child on its own is counted
// (Instance.Exits) with how long it ran and the last lines of its stderr, and a revision's
// counters over all the instances it ran are kept (Totals).
//
// It is Linux only (process groups, /proc). It knows nothing of the engine or the proxy: local
// mode calls Scale with what the engine decided, reads Instances, and reacts to Changes.
package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"ramp.dev/ramp/api/v1alpha1"
)

// Log keys.
const (
	keyRollout  = "rollout"
	keyRevision = "revision"
	keyInstance = "instance"
)

// Defaults of the probe and stop settings, as documented in api/v1alpha1.
const (
	defaultPeriod      = time.Second
	defaultTimeout     = time.Second
	defaultSuccess     = 1
	defaultFailure     = 3
	defaultGracePeriod = 30 * time.Second
	// fastProbeInterval is how often an instance is probed from its (re)start until it is
	// ready for the first time, so that a new instance does not wait a whole period.
	fastProbeInterval = 100 * time.Millisecond
	// crashLoopRestarts is the restart count from which an instance that keeps exiting is
	// crash-looping.
	crashLoopRestarts = 3
)

// Options configure a Supervisor.
type Options struct {
	// StateDir is where instances.json is kept. Empty means no state file: the children of a
	// ramp that was killed outright are not cleaned up by the next one.
	StateDir string
	// Logger receives the supervisor's own logs and every line the children write to stdout
	// and stderr (keys rollout, revision, instance, stream). Nil means slog.Default().
	Logger *slog.Logger
	// Drain is called before an instance is stopped (scale down, Close), with the instance
	// already marked Terminating; ctx ends after the instance's termination grace period.
	// The stop signal is sent when Drain returns. It is called from one goroutine per
	// instance, so calls for different instances may overlap. Nil means no drain.
	Drain func(ctx context.Context, inst Instance)
	// RestartBackoff is the wait before the first restart of a crashed instance; it doubles
	// with each crash in a row. Zero means 500ms.
	RestartBackoff time.Duration
	// MaxRestartBackoff caps the wait before a restart. An instance that ran at least this
	// long before it exited starts again from RestartBackoff, and one that has run this long
	// since its last restart is no longer CrashLooping. Zero means 10s.
	MaxRestartBackoff time.Duration
}

// Instance is a snapshot of one instance of one revision.
type Instance struct {
	// ID is "<rollout>-r<revision>-<n>", unique within the Supervisor's life.
	ID       string
	Rollout  string
	Revision int64
	// Addr is where the instance serves: 127.0.0.1:<port> for a process, the upstream
	// address for a fixed upstream. Empty before a process was first started.
	Addr string
	// PID is the process id (and process group id) of the running process. Zero for a fixed
	// upstream, and while a crashed process waits to be restarted.
	PID int
	// StartedAt is when the current process was started (when probing began for a fixed
	// upstream). Zero while nothing runs.
	StartedAt time.Time
	// Ready says the instance passed its readiness probe. A Terminating instance is no longer
	// probed and keeps its last value: it must not receive new traffic either way.
	Ready bool
	// ReadySince is when the instance last became ready; zero when not ready.
	ReadySince time.Time
	// Terminating says the instance is being drained and stopped: it must not receive new
	// traffic. It disappears from Instances once stopped.
	Terminating bool
	// Restarts counts the restarts after the process exited on its own.
	Restarts int32
	// Exits counts the times the process exited on its own (not stopped by ramp); it is
	// counted at the exit, before the restart's backoff.
	Exits int32
	// CreatedAt is when the instance was first started: its instance-time runs from then,
	// across restarts.
	CreatedAt time.Time
	// ExitStderr is the last lines (at most stderrTailLines, each cut at stderrTailBytes) the
	// process wrote to stderr before it last exited on its own, with the values of the
	// template's env variables replaced by "***". Nil when it never did.
	ExitStderr []string
	// ExitRan is how long the process that last exited on its own had run.
	ExitRan time.Duration
	// CrashLooping says the instance restarted at least 3 times and its current process has
	// not yet run for MaxRestartBackoff (or is not running).
	CrashLooping bool
	// ReadinessFailures counts the failed readiness probes of processes that had passed one:
	// the probes that fail while a process starts (before its first success) do not count.
	ReadinessFailures int64
	// ConsecutiveFailures counts the failed probes since the last success.
	ConsecutiveFailures int32
	// Message is the last probe error or exit status, e.g. "readiness probe GET /healthz:
	// 503 Service Unavailable", "exited with status 2" or "killed by signal SIGKILL". It is
	// cleared when the instance becomes ready.
	Message string
	// LastExit is how the instance's process last ended, e.g. "exited with status 3" or
	// "start: ...". Empty when it never ended (or is a fixed upstream).
	LastExit string
	// CPUSeconds is the user+system CPU time of the instance's main process. Zero for a
	// fixed upstream.
	CPUSeconds float64
	// MemoryBytes is the resident memory of the instance's main process. Zero for a fixed
	// upstream.
	MemoryBytes int64
}

// Supervisor runs the instances of every revision of every rollout. Its methods are safe for
// concurrent use.
type Supervisor struct {
	log     *slog.Logger
	opts    Options
	proc    procfs.FS
	client  *http.Client
	changes chan struct{}
	// changedMu guards changed: the rollouts whose instances changed since the last Changed
	// ("" for every rollout). It is taken alone.
	changedMu sync.Mutex
	changed   map[string]bool

	// ctx ends on Detach: the run goroutines return without touching their processes.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stateMu sync.Mutex // serialises writes of instances.json; taken before mu, never after

	mu       sync.Mutex
	revs     map[revKey]*revState
	ports    map[int]bool // ports given to live instances
	closed   bool
	detached bool
}

type revKey struct {
	rollout  string
	revision int64
}

type revState struct {
	key   revKey
	seq   int         // last instance number given
	insts []*instance // in start order, including terminating ones
	// gone sums the counters of the instances already removed, so the revision's totals
	// never go down.
	gone RevisionTotals
}

// RevisionTotals are a revision's counters over every instance it ever ran (in this
// Supervisor's life), and its resident memory now.
type RevisionTotals struct {
	// Exits counts the exits of its processes on their own; Restarts the restarts after them.
	Exits, Restarts int64
	// ProbeFailures counts its failed readiness probes.
	ProbeFailures int64
	// CPUSeconds is the CPU time its processes used (as sampled at each probe).
	CPUSeconds float64
	// MemoryBytes is the resident memory of its running processes.
	MemoryBytes int64
	// Instances counts its instances now, terminating ones included.
	Instances int
}

// instance is one instance's state. info, pgid and startTicks are guarded by Supervisor.mu;
// the rest is fixed at creation or owned by the instance's run goroutine.
type instance struct {
	rev      *revState
	seq      int
	process  *v1alpha1.ProcessTemplate // nil for a fixed upstream
	upstream string

	log *slog.Logger

	ctx    context.Context // ends when the instance is to stop, or on Detach
	cancel context.CancelFunc

	info       Instance
	pgid       int
	startTicks uint64
	running    bool // a process is running (and is listed in instances.json)
	port       int  // the port reserved in Supervisor.ports; 0 for none
	// cpuPast is the CPU time of the instance's earlier processes.
	cpuPast float64
}

// New returns a Supervisor. It first kills (SIGKILL to the process group) every instance that
// StateDir/instances.json lists and that is still alive with the same start time, which are
// the children of a previous ramp that could not stop them.
func New(opts Options) (*Supervisor, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RestartBackoff <= 0 {
		opts.RestartBackoff = 500 * time.Millisecond
	}
	if opts.MaxRestartBackoff <= 0 {
		opts.MaxRestartBackoff = 10 * time.Second
	}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, fmt.Errorf("open /proc: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{
		log:     opts.Logger,
		opts:    opts,
		proc:    fs,
		changes: make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
		revs:    map[revKey]*revState{},
		ports:   map[int]bool{},
		client: &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true},
			// A 3xx answer is a success: do not follow it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if opts.StateDir != "" {
		if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
			cancel()
			return nil, fmt.Errorf("create state dir: %w", err)
		}
		if err := s.recover(); err != nil {
			cancel()
			return nil, err
		}
	}
	return s, nil
}

// Changes signals, coalesced (the channel holds at most one value), that some instance was
// started, became ready or unready, exited, began terminating or was removed. Changed says
// of which rollouts.
func (s *Supervisor) Changes() <-chan struct{} { return s.changes }

// Changed returns the rollouts whose instances changed since the last call, in no order; ""
// stands for every rollout.
func (s *Supervisor) Changed() []string {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	out := make([]string, 0, len(s.changed))
	for name := range s.changed {
		out = append(out, name)
	}
	clear(s.changed)
	return out
}

// notify records that rollout's instances changed ("" for every rollout's) and signals
// Changes.
func (s *Supervisor) notify(rollout string) {
	s.changedMu.Lock()
	if s.changed == nil {
		s.changed = map[string]bool{}
	}
	s.changed[rollout] = true
	s.changedMu.Unlock()
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// Scale makes revision of rollout run n instances of tmpl. For a process template it starts
// or stops instances; when it stops, it stops the instances that are not ready first, then
// the newest. For fixed upstreams each address is one instance and n is ignored unless it is
// 0, which stops probing them all. Scale returns at once: starting, draining and stopping
// happen in the background. Scale after Close or Detach does nothing.
func (s *Supervisor) Scale(rollout string, revision int64, tmpl v1alpha1.Template, n int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.detached {
		return
	}
	k := revKey{rollout, revision}
	r := s.revs[k]
	if r == nil {
		if n <= 0 {
			return
		}
		r = &revState{key: k}
		s.revs[k] = r
	}
	var live []*instance
	for _, in := range r.insts {
		if !in.info.Terminating {
			live = append(live, in)
		}
	}
	changed := false
	switch {
	case len(tmpl.Upstreams) > 0 && tmpl.Process == nil:
		want := map[string]bool{}
		if n > 0 {
			for _, a := range tmpl.Upstreams {
				want[a] = true
			}
		}
		for _, in := range live {
			if in.process == nil && want[in.upstream] {
				delete(want, in.upstream)
				continue
			}
			s.stopLocked(in)
			changed = true
		}
		for _, a := range tmpl.Upstreams { // in the template's order
			if want[a] {
				delete(want, a)
				s.startLocked(r, nil, a)
				changed = true
			}
		}
	case tmpl.Process != nil:
		var procs []*instance
		for _, in := range live {
			if in.process == nil {
				s.stopLocked(in)
				changed = true
				continue
			}
			procs = append(procs, in)
		}
		for i := len(procs); i < int(n); i++ {
			s.startLocked(r, tmpl.Process, "")
			changed = true
		}
		if extra := len(procs) - int(max(n, 0)); extra > 0 {
			// Not ready first, then newest first.
			slices.SortStableFunc(procs, func(a, b *instance) int {
				if a.info.Ready != b.info.Ready {
					if !a.info.Ready {
						return -1
					}
					return 1
				}
				return b.seq - a.seq
			})
			for _, in := range procs[:extra] {
				s.stopLocked(in)
			}
			changed = true
		}
	default:
		if n > 0 {
			s.log.Error("template has neither process nor upstreams", keyRollout, rollout, keyRevision, revision)
		}
		for _, in := range live {
			s.stopLocked(in)
			changed = true
		}
	}
	if changed {
		s.notify(rollout)
	}
}

// Stop drains and stops the instances of rollout with these IDs, as a scale down does, and
// returns at once. A later Scale no longer counts them, so it starts others in their place:
// that is how a restart replaces instances. IDs that are unknown or already stopping are
// ignored.
func (s *Supervisor) Stop(rollout string, ids []string) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.detached {
		return
	}
	changed := false
	for k, r := range s.revs {
		if k.rollout != rollout {
			continue
		}
		for _, in := range r.insts {
			if !in.info.Terminating && slices.Contains(ids, in.info.ID) {
				s.stopLocked(in)
				changed = true
			}
		}
	}
	if changed {
		s.notify(rollout)
	}
}

// startLocked adds an instance to r and starts its run goroutine.
func (s *Supervisor) startLocked(r *revState, p *v1alpha1.ProcessTemplate, upstream string) {
	r.seq++
	ctx, cancel := context.WithCancel(s.ctx)
	id := fmt.Sprintf("%s-r%d-%d", r.key.rollout, r.key.revision, r.seq)
	in := &instance{
		rev: r, seq: r.seq, process: p, upstream: upstream, ctx: ctx, cancel: cancel,
		log: s.log.With(keyRollout, r.key.rollout, keyRevision, r.key.revision, keyInstance, id),
	}
	in.info = Instance{
		ID:       id,
		Rollout:  r.key.rollout,
		Revision: r.key.revision,
		Addr:     upstream,
	}
	r.insts = append(r.insts, in)
	s.wg.Add(1)
	go s.run(in)
}

// stopLocked marks in Terminating and tells its run goroutine to drain and stop it.
func (s *Supervisor) stopLocked(in *instance) {
	in.info.Terminating = true
	in.cancel()
}

// Instances returns a snapshot of the instances of rollout by revision, in start order,
// including the terminating ones. Revisions without instances are left out.
func (s *Supervisor) Instances(rollout string) map[int64][]Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64][]Instance{}
	for k, r := range s.revs {
		if k.rollout != rollout || len(r.insts) == 0 {
			continue
		}
		list := make([]Instance, len(r.insts))
		for i, in := range r.insts {
			list[i] = in.info
		}
		out[k.revision] = list
	}
	return out
}

// Totals returns the counters of rollout's revisions, by revision, including the revisions
// whose instances are all gone.
func (s *Supervisor) Totals(rollout string) map[int64]RevisionTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]RevisionTotals{}
	for k, r := range s.revs {
		if k.rollout != rollout {
			continue
		}
		t := r.gone
		for _, in := range r.insts {
			in.addTo(&t)
			t.MemoryBytes += in.info.MemoryBytes
			t.Instances++
		}
		out[k.revision] = t
	}
	return out
}

// addTo adds the instance's counters to t. Supervisor.mu is held.
func (in *instance) addTo(t *RevisionTotals) {
	t.Exits += int64(in.info.Exits)
	t.Restarts += int64(in.info.Restarts)
	t.ProbeFailures += in.info.ReadinessFailures
	t.CPUSeconds += in.cpuPast + in.info.CPUSeconds
}

// remove drops a stopped instance.
func (s *Supervisor) remove(in *instance) {
	s.mu.Lock()
	if s.detached {
		s.mu.Unlock()
		return
	}
	// The revision stays, even when empty, so that instance numbers are not given twice.
	r := in.rev
	in.addTo(&r.gone)
	r.insts = slices.DeleteFunc(r.insts, func(x *instance) bool { return x == in })
	if in.port != 0 {
		delete(s.ports, in.port)
	}
	s.mu.Unlock()
	s.notify(in.rev.key.rollout)
}

// Close stops every instance as a scale down to 0 would (drain, stop signal, grace period,
// SIGKILL) and waits for them. When ctx ends first it SIGKILLs the process groups still
// running and returns ctx's error. Close after Detach does nothing.
func (s *Supervisor) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.detached {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, r := range s.revs {
		for _, in := range r.insts {
			if !in.info.Terminating {
				s.stopLocked(in)
			}
		}
	}
	s.mu.Unlock()
	s.notify("")

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.writeState()
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for _, r := range s.revs {
		for _, in := range r.insts {
			if in.running && in.pgid > 0 {
				_ = syscall.Kill(-in.pgid, syscall.SIGKILL)
			}
		}
	}
	s.mu.Unlock()
	return fmt.Errorf("stop instances: %w", ctx.Err())
}

// Detach forgets the children without stopping them: probing and restarting stop, and
// instances.json keeps listing them, so the next Supervisor on the same StateDir kills them.
func (s *Supervisor) Detach() {
	s.mu.Lock()
	s.detached = true
	s.mu.Unlock()
	s.cancel()
}

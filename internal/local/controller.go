package local

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/analysis/builtin"
	"ramp.dev/ramp/internal/analysis/command"
	promprovider "ramp.dev/ramp/internal/analysis/prometheus"
	"ramp.dev/ramp/internal/analysis/scrape"
	"ramp.dev/ramp/internal/analysis/web"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/driver"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/gate"
	"ramp.dev/ramp/internal/rampmetrics"
	"ramp.dev/ramp/internal/store"
	"ramp.dev/ramp/internal/supervisor"
)

// Log keys.
const (
	keyRollout  = "rollout"
	keyRevision = "revision"
)

// DefaultTick is the safety tick: every rollout is stepped at least this often, even when
// nothing asks for it.
const DefaultTick = 5 * time.Second

// retryAfter is when a rollout whose step failed is stepped again.
const retryAfter = time.Second

// instances runs and observes the rollouts' instances: the process supervisor.
type instances interface {
	Instances(rollout string) map[int64][]supervisor.Instance
	Scale(rollout string, revision int64, tmpl v1alpha1.Template, n int32)
	Stop(rollout string, ids []string)
	Totals(rollout string) map[int64]supervisor.RevisionTotals
	// Changes signals, coalesced, that some instance changed, and Changed says of which
	// rollouts ("" for every one).
	Changes() <-chan struct{}
	Changed() []string
}

var _ instances = (*supervisor.Supervisor)(nil)

// deps are what a Controller is built from.
type deps struct {
	store *store.Store
	sup   instances
	// clock nil means the real clock; log nil slog.Default(); registry nil a new one;
	// proxies nil new ones; tick (the safety tick) zero DefaultTick.
	clock    clock
	log      *slog.Logger
	registry *prometheus.Registry
	proxies  *proxies
	tick     time.Duration
}

// Controller is local mode's adapter around the engine: it steps each rollout with the
// driver when the rollout is due (see wakeups), over the supervisor and the proxies, and
// serves the control API through control.Control (backend.go).
type Controller struct {
	deps
	// measure takes analysis measurements off the loop.
	measure *analysis.Async
	// gates calls gate webhooks off the loop.
	gates   *gate.Caller
	judging *judging
	wake    *wakeups

	// mu serialises every change of state: API commands and the steps of the loop.
	mu sync.Mutex
	// exits are the exits of each instance already recorded as events, by rollout and
	// instance ID.
	exits map[string]map[string]int32
}

var _ control.Control = (*Controller)(nil)

// newController builds a Controller and its analysis providers; it starts nothing.
func newController(d deps) *Controller {
	c := &Controller{deps: d, wake: newWakeups(), exits: map[string]map[string]int32{}}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.registry == nil {
		c.registry = prometheus.NewRegistry()
	}
	if c.proxies == nil {
		c.proxies = newProxies(c.log, c.registry)
	}
	if c.tick == 0 {
		c.tick = DefaultTick
	}
	c.judging = &judging{proxies: c.proxies, instances: addresses{c}.Instances, wake: c.wake.now}
	runner := &analysis.Runner{Logger: c.log, Providers: map[string]analysis.Provider{
		"builtin":    builtin.New(source{c}, c.clock.Now),
		"scrape":     scrape.New(addresses{c}, nil, c.clock.Now),
		"prometheus": promprovider.New(c.clock.Now),
		"web":        web.New(nil),
		"command":    command.New(addresses{c}),
		// job needs Kubernetes mode: Apply refuses templates that use it.
	}}
	c.measure = analysis.NewAsync(runner, func(_, rollout string) { c.wake.now(rollout) })
	c.gates = gate.NewCaller(nil, func(_, rollout string) { c.wake.now(rollout) })
	return c
}

// loop steps each rollout when it is due until ctx ends.
func (c *Controller) loop(ctx context.Context) {
	for {
		next := c.stepDue(ctx)
		wait := c.tick
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(c.clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake.kick:
		case <-c.sup.Changes():
			c.instancesChanged()
		case <-c.clock.After(wait):
		}
	}
}

// instancesChanged wakes the rollouts whose instances changed.
func (c *Controller) instancesChanged() {
	for _, name := range c.sup.Changed() {
		if name == "" {
			c.wake.everything()
			continue
		}
		c.wake.now(name)
	}
}

// stepDue steps the rollouts due now, one at a time, and returns when the next one is due.
func (c *Controller) stepDue(ctx context.Context) time.Time {
	now := c.clock.Now()
	names, all := c.wake.take(now, c.tick)
	if all {
		rollouts, err := c.store.ListRollouts()
		if err != nil {
			c.log.Error("list rollouts", "err", err)
		}
		names = names[:0]
		for i := range rollouts {
			names = append(names, rollouts[i].Name)
		}
	}
	for _, name := range names {
		c.step(ctx, name)
	}
	return c.wake.next(c.tick)
}

// step runs one decision for the named rollout and asks for the next when it is due.
func (c *Controller) step(ctx context.Context, name string) {
	defer func(start time.Time) { rampmetrics.ObserveReconcile(rampmetrics.ModeLocal, time.Since(start)) }(time.Now())
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.store.GetRollout(name)
	if err != nil {
		c.log.Error("reconcile", keyRollout, name, "err", err)
		return
	}
	now := c.clock.Now()
	res, err := driver.Step(ctx, &mode{c: c}, r, now)
	if err != nil {
		c.log.Error("reconcile", keyRollout, name, "err", err)
		res.Next = now.Add(retryAfter)
	}
	c.wake.at(name, res.Next)
}

// recordExits records an InstanceExited event for each exit of an instance's own not yet
// recorded, saying how it ended, how long it ran and the last lines of its stderr. c.mu is held.
func (c *Controller) recordExits(rollout string, observed map[int64][]supervisor.Instance) {
	recorded := c.exits[rollout]
	next := map[string]int32{} // only the instances still there
	for rev, list := range observed {
		for _, in := range list {
			next[in.ID] = in.Exits
			if in.Exits <= recorded[in.ID] {
				continue
			}
			msg := fmt.Sprintf("instance %s of revision %d %s after %s (exit %d of this instance)",
				in.ID, rev, in.LastExit, in.ExitRan.Round(time.Millisecond), in.Exits)
			if len(in.ExitStderr) > 0 {
				msg += "; last stderr: " + strings.Join(in.ExitStderr, " | ")
			} else {
				msg += "; no stderr"
			}
			c.record(rollout, engine.EventWarning, "InstanceExited", msg, rev)
		}
	}
	c.exits[rollout] = next
}

func (c *Controller) record(rollout, typ, reason, msg string, rev int64) {
	e, err := c.store.AppendEvent(control.Event{Time: c.clock.Now(), Rollout: rollout, Type: typ, Reason: reason, Message: msg, Revision: rev})
	if err != nil {
		c.log.Error("record event", keyRollout, rollout, "err", err)
		return
	}
	level := slog.LevelInfo
	if typ == engine.EventWarning {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, msg, keyRollout, rollout, keyRevision, rev, "reason", reason, "seq", e.Seq)
}

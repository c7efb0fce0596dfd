package local

import (
	"sync"
	"time"
)

// clock is local mode's time: the real one in Run, a fake one in tests.
type clock interface {
	Now() time.Time
	// After sends the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// wakeups says when each rollout is next stepped: at the time its last step asked for
// (driver.Result.Next), at once when something about it changed (a command, an apply, a
// measurement or a scrape that finished, a change of its instances), and every rollout when
// the safety tick has passed since they were all stepped. It is safe for concurrent use.
type wakeups struct {
	mu sync.Mutex
	// due is when each rollout is due; a zero time means at once.
	due map[string]time.Time
	// all asks for every rollout at once; lastAll is when they were last all stepped.
	all     bool
	lastAll time.Time
	// kick wakes the loop (it holds at most one value).
	kick chan struct{}
}

func newWakeups() *wakeups {
	return &wakeups{due: map[string]time.Time{}, all: true, kick: make(chan struct{}, 1)}
}

// now asks for a step of rollout at once.
func (w *wakeups) now(rollout string) {
	w.mu.Lock()
	w.due[rollout] = time.Time{}
	w.mu.Unlock()
	w.poke()
}

// everything asks for a step of every rollout at once.
func (w *wakeups) everything() {
	w.mu.Lock()
	w.all = true
	w.mu.Unlock()
	w.poke()
}

func (w *wakeups) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// at asks for a step of rollout at t, unless one is due earlier; a zero t asks for none.
func (w *wakeups) at(rollout string, t time.Time) {
	if t.IsZero() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.due[rollout]; !ok || t.Before(old) {
		w.due[rollout] = t
	}
}

// take returns the rollouts due at now and forgets their due times; all is true when every
// rollout is due (asked for, or tick has passed since they were all stepped).
func (w *wakeups) take(now time.Time, tick time.Duration) (names []string, all bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.all || !now.Before(w.lastAll.Add(tick)) {
		w.all, w.lastAll = false, now
		clear(w.due)
		return nil, true
	}
	for name, t := range w.due {
		if !now.Before(t) {
			names = append(names, name)
			delete(w.due, name)
		}
	}
	return names, false
}

// next is when the next rollout is due: the earliest due time, or the safety tick.
func (w *wakeups) next(tick time.Duration) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	next := w.lastAll.Add(tick)
	if w.all {
		return time.Time{}
	}
	for _, t := range w.due {
		if t.Before(next) {
			next = t
		}
	}
	return next
}

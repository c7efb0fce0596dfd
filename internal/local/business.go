package local

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/analysis/scrape"
	"ramp.dev/ramp/internal/offloop"
)

const (
	// businessScrapeEvery is how often the judge's business metrics are scraped: each round
	// is one slice of their tests.
	businessScrapeEvery = time.Second
	// businessScrapeTimeout bounds one round of scrapes (all instances, in parallel).
	businessScrapeTimeout = 2 * time.Second
)

// businessScraper reads the judge's business metrics (spec.strategy.canary.judge.business)
// from the canary's and stable's instances off the control loop: one round of scrapes at a
// time runs in its own goroutine, and the loop takes the finished round on its next step.
// Its methods are called from the loop only.
type businessScraper struct {
	rollout        string
	canary, stable int64
	metrics        []v1alpha1.JudgeBusinessMetric
	client         *http.Client
	ctx            context.Context
	cancel         context.CancelFunc
	// counters follow canary's and stable's instances; only the round in flight uses them.
	counters [2]*businessCounters

	rounds    offloop.Reader[string, struct{}, businessRound]
	lastStart time.Time
	prev      time.Time // when the previous round began; zero before the first
}

// businessRound is one round of scrapes: for each business metric, the increases on the
// canary and on stable since the round before.
type businessRound struct {
	// from and at are when the round before and this one began (from is zero for the first
	// round, whose increases count only instances started since the judge run began).
	from, at time.Time
	slices   map[string]judge.Slice
	// errs are the scrapes that failed; their instances' increases count in a later round.
	errs []string
}

func newBusinessScraper(ctx context.Context, rollout string, canary, stable int64, since time.Time, metrics []v1alpha1.JudgeBusinessMetric) *businessScraper {
	ctx, cancel := context.WithCancel(ctx)
	return &businessScraper{
		rollout: rollout, canary: canary, stable: stable, metrics: metrics,
		client: &http.Client{}, ctx: ctx, cancel: cancel,
		counters: [2]*businessCounters{newBusinessCounters(since), newBusinessCounters(since)},
	}
}

// stop cancels the round in flight, if any; no round starts after it.
// stop ends the scraper's rounds; a nil scraper (no business metrics) has none.
func (b *businessScraper) stop() {
	if b != nil {
		b.cancel()
	}
}

// take returns the round finished since the last call, if any.
func (b *businessScraper) take() []businessRound {
	if r, ok := b.rounds.Take(b.rollout); ok {
		return []businessRound{r}
	}
	return nil
}

// start begins a round when none is in flight or untaken and the last began
// businessScrapeEvery ago. instances lists a revision's ready instances; kick is called when
// the round is done.
func (b *businessScraper) start(now time.Time, instances func(rollout string, rev int64) []string, kick func()) {
	if now.Sub(b.lastStart) < businessScrapeEvery {
		return
	}
	from := b.prev
	if b.rounds.Start(b.ctx, b.rollout, func(ctx context.Context) businessRound {
		return b.round(ctx, from, now, instances)
	}, func(string) { kick() }) {
		b.lastStart, b.prev = now, now
	}
}

// round scrapes every ready instance of both revisions at once and turns the pages into
// increases.
func (b *businessScraper) round(ctx context.Context, from, at time.Time, instances func(rollout string, rev int64) []string) businessRound {
	ctx, cancel := context.WithTimeout(ctx, businessScrapeTimeout)
	defer cancel()
	var paths []string
	for _, m := range b.metrics {
		if !slices.Contains(paths, businessPath(m)) {
			paths = append(paths, businessPath(m))
		}
	}
	revs := [2]int64{b.canary, b.stable}
	pages := [2]map[string]map[string]map[string]*dto.MetricFamily{}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []string
	)
	for i, rev := range revs {
		pages[i] = map[string]map[string]map[string]*dto.MetricFamily{}
		for _, addr := range instances(b.rollout, rev) {
			pages[i][addr] = map[string]map[string]*dto.MetricFamily{}
		}
	}
	for i := range pages {
		for addr, byPath := range pages[i] {
			for _, path := range paths {
				wg.Go(func() {
					f, err := scrape.Fetch(ctx, b.client, addr, path, businessScrapeTimeout)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err.Error())
						return
					}
					byPath[path] = f
				})
			}
		}
	}
	wg.Wait()
	// An instance counts only when every path it is asked for was read.
	for i := range pages {
		for addr, p := range pages[i] {
			if len(p) < len(paths) {
				pages[i][addr] = nil
			}
		}
	}
	canary, cerrs := b.counters[0].observe(b.metrics, pages[0])
	stable, serrs := b.counters[1].observe(b.metrics, pages[1])
	errs = append(errs, cerrs...)
	errs = append(errs, serrs...)
	sort.Strings(errs)
	r := businessRound{from: from, at: at, slices: map[string]judge.Slice{}, errs: errs}
	for _, m := range b.metrics {
		c, s := canary[m.Name], stable[m.Name]
		r.slices[m.Name] = judge.Slice{CanaryTotal: c.total, CanaryEvents: c.events, StableTotal: s.total, StableEvents: s.events}
	}
	return r
}

func businessPath(m v1alpha1.JudgeBusinessMetric) string {
	if m.Path == "" {
		return scrape.DefaultPath
	}
	return m.Path
}

// businessCount is one business metric's increase on one revision in one round.
type businessCount struct{ events, total int64 }

// businessCounters turns successive rounds of scrapes of one revision's instances into
// increases: each series of each instance is followed by a scrape.Counter (a counter that
// goes down restarted from zero). An instance seen for the first time counts from its
// first scrape, or from zero when its process started at or after since (it started during
// the judge run); a series that appears on an instance already scraped counts from zero (a
// labelled counter appears at its first increment); an instance whose process start time
// changed restarted and counts from zero; an instance no longer listed is forgotten. Not
// safe for concurrent use.
type businessCounters struct {
	since     time.Time
	instances map[string]*businessInstance // by address
}

type businessInstance struct {
	started  time.Time
	counters map[string]*scrape.Counter // by business metric, events or total, series
}

func newBusinessCounters(since time.Time) *businessCounters {
	return &businessCounters{since: since, instances: map[string]*businessInstance{}}
}

// observe takes one round: pages holds every listed instance by address, with its pages by
// path, or nil when its scrape failed (its counters are kept, and its increase counts in
// the next round that reads it).
func (b *businessCounters) observe(metrics []v1alpha1.JudgeBusinessMetric, pages map[string]map[string]map[string]*dto.MetricFamily) (map[string]businessCount, []string) {
	for addr := range b.instances {
		if _, ok := pages[addr]; !ok {
			delete(b.instances, addr)
		}
	}
	out := map[string]businessCount{}
	var errs []string
	addrs := make([]string, 0, len(pages))
	for addr := range pages {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	for _, addr := range addrs {
		p := pages[addr]
		if p == nil {
			continue
		}
		var started time.Time
		for _, m := range metrics {
			if s := scrape.StartTime(p[businessPath(m)]); !s.IsZero() {
				started = s
				break
			}
		}
		in := b.instances[addr]
		fromZero := true
		if in == nil || !in.started.Equal(started) {
			// New here, or restarted at the same address.
			fromZero = in != nil || (!started.IsZero() && !started.Before(b.since))
			in = &businessInstance{started: started, counters: map[string]*scrape.Counter{}}
			b.instances[addr] = in
		}
		for _, m := range metrics {
			f := p[businessPath(m)]
			read := func(kind string, labels map[string]string) int64 {
				series, _, err := scrape.Select(f, m.Metric, labels)
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s on %s: %s", m.Metric, addr, err.Error()))
					return 0
				}
				var sum float64
				for _, s := range series {
					if !s.Counter {
						errs = append(errs, fmt.Sprintf("%s on %s: is not a counter", m.Metric, addr))
						return 0
					}
					key := m.Name + " " + kind + " " + s.Key
					c := in.counters[key]
					if c == nil {
						c = &scrape.Counter{}
						in.counters[key] = c
					}
					sum += c.Observe(s.Value, fromZero)
				}
				return int64(sum + 0.5)
			}
			c := out[m.Name]
			c.events += read("events", m.Events)
			c.total += read("total", m.Total)
			out[m.Name] = c
		}
	}
	return out, errs
}

// businessEvents says what a business metric's events are, for explanations:
// chat_triage_total{outcome="failed"}.
func businessEvents(m v1alpha1.JudgeBusinessMetric) string {
	return scrape.Selector(m.Metric, m.Events) // events are never empty (spec validation)
}

package local

import (
	"context"
	"sync"
	"time"

	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/spec"
)

const (
	// seriesStep is the length of one point of the dashboard's charts; the proxy keeps the
	// last 10 minutes of requests, second by second, which the points cover.
	seriesStep = 5 * time.Second
	// businessKeep is how long the business rounds are kept for the charts.
	businessKeep = 10 * time.Minute
)

var _ control.SeriesSource = (*Controller)(nil)

// Series returns the rollout's requests per revision over the last 10 minutes, read from its
// proxy, with the judge's business metrics as its rounds of scrapes counted them.
func (c *Controller) Series(ctx context.Context, name string) (*control.Series, error) {
	r, err := c.store.GetRollout(name)
	if err != nil {
		return nil, err
	}
	out := &control.Series{Rollout: name, StepSeconds: int64(seriesStep / time.Second), Revisions: []control.RevisionSeries{}}
	if r.Spec.Strategy.Canary != nil {
		for _, b := range spec.Judge(r.Spec.Strategy.Canary).Business {
			out.Business = append(out.Business, b.Name)
		}
	}
	p := c.proxies.of(name)
	if p == nil {
		return out, nil
	}
	biz := c.judging.business.of(name)
	for _, rev := range p.Revisions() {
		spans := p.Spans(rev, seriesStep)
		if len(spans) == 0 {
			continue
		}
		rs := control.RevisionSeries{Revision: rev, Points: make([]control.SeriesPoint, len(spans))}
		for i, sp := range spans {
			rs.Points[i] = point(sp, biz, rev)
		}
		out.Revisions = append(out.Revisions, rs)
		if out.From.IsZero() {
			out.From = time.Unix(spans[0].From, 0).UTC()
			last := spans[len(spans)-1]
			out.To = time.Unix(last.From+last.Seconds, 0).UTC()
		}
	}
	return out, nil
}

// point turns one span of the proxy into a chart point.
func point(sp proxy.Span, biz []businessSample, rev int64) control.SeriesPoint {
	pt := control.SeriesPoint{
		Time:     time.Unix(sp.From+sp.Seconds, 0).UTC(),
		Requests: sp.Requests,
		Rate:     float64(sp.Requests) / float64(sp.Seconds),
		Errors:   sp.Errors,
	}
	if sp.Requests > 0 {
		share := float64(sp.Errors) / float64(sp.Requests)
		pt.ErrorShare = &share
		pt.LatencyP95 = seconds(sp.Latency.Quantile(0.95))
	}
	if sp.FirstToken.Count() > 0 {
		pt.FirstTokenP95 = seconds(sp.FirstToken.Quantile(0.95))
	}
	events, totals := map[string]int64{}, map[string]int64{}
	for _, s := range biz {
		if s.revision == rev && s.at >= sp.From && s.at < sp.From+sp.Seconds {
			events[s.metric] += s.events
			totals[s.metric] += s.total
		}
	}
	for m, t := range totals {
		if t > 0 {
			if pt.Business == nil {
				pt.Business = map[string]float64{}
			}
			pt.Business[m] = float64(events[m]) / float64(t)
		}
	}
	return pt
}

func seconds(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}

// businessSample is one business metric's increase on one revision in one round of scrapes.
type businessSample struct {
	// at is when the round began (Unix seconds).
	at            int64
	revision      int64
	metric        string
	events, total int64
}

// businessBook keeps the judge's rounds of business-metric scrapes of the last minutes, by
// rollout, for the dashboard's charts. Safe for concurrent use; the zero value is ready.
type businessBook struct {
	mu      sync.Mutex
	samples map[string][]businessSample
}

// add records a round's increases on the canary and stable revisions and forgets rounds
// older than businessKeep.
func (b *businessBook) add(rollout string, at time.Time, canary, stable int64, slices map[string]judge.Slice) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.samples == nil {
		b.samples = map[string][]businessSample{}
	}
	cut := at.Add(-businessKeep).Unix()
	kept := b.samples[rollout][:0]
	for _, s := range b.samples[rollout] {
		if s.at >= cut {
			kept = append(kept, s)
		}
	}
	for m, sl := range slices {
		kept = append(kept,
			businessSample{at: at.Unix(), revision: canary, metric: m, events: sl.CanaryEvents, total: sl.CanaryTotal},
			businessSample{at: at.Unix(), revision: stable, metric: m, events: sl.StableEvents, total: sl.StableTotal})
	}
	b.samples[rollout] = kept
}

// of returns a copy of the rollout's samples.
func (b *businessBook) of(rollout string) []businessSample {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]businessSample(nil), b.samples[rollout]...)
}

package main

import (
	"math/rand/v2"
	"testing"
)

// The pending slices hold the slow requests still in flight past the threshold, by second
// of arrival, with that second's arrivals: a canary whose answers are all slow shows many
// more of them than stable.
func TestInFlightBuildsPendingSlicesOfSlowRequests(t *testing.T) {
	f := &inFlight{r: rand.New(rand.NewPCG(1, 2))}
	var s sec
	for tt := range 10 {
		s = sec{canaryN: 50, stableN: 950}
		s.canary[mSlow], s.stable[mSlow] = 50, 38
		f.add(tt, &s)
	}
	if len(s.pending[mSlow]) == 0 {
		t.Fatal("no pending latency slice after 10 seconds of slow requests")
	}
	var c, st int64
	for _, sl := range s.pending[mSlow] {
		if sl.CanaryTotal != 50 || sl.StableTotal != 950 {
			t.Fatalf("pending slice %+v: want the second's arrivals, 50 and 950", sl)
		}
		c, st = c+sl.CanaryEvents, st+sl.StableEvents
	}
	if c == 0 || float64(c)/50 < 5*float64(st)/950 {
		t.Fatalf("canary %d of 50 per second in flight, stable %d of 950: want the canary's share far higher", c, st)
	}
	if len(s.pending[mErrors]) != 0 {
		t.Fatalf("pending error-rate slices %v, want none", s.pending[mErrors])
	}
}

package control

import (
	"context"
	"errors"
	"time"
)

// SeriesSource is what a mode that measures its rollouts' traffic itself (local mode, with its
// proxy) offers besides Control: each revision's recent requests, for the dashboard's charts.
// A mode without it (Kubernetes mode, whose numbers are in Prometheus) shows no charts.
type SeriesSource interface {
	// Series returns the rollout's recent per-revision series; a missing rollout is an error
	// wrapping ErrNotFound.
	Series(ctx context.Context, name string) (*Series, error)
}

// ErrNoSeries is wrapped by a Series error that means the mode has no series to give (the
// API answers 501 Not Implemented with the error's text).
var ErrNoSeries = errors.New("this mode has no per-revision series")

// Series is a rollout's recent traffic, per revision, cut into steps of equal length.
type Series struct {
	Rollout string `json:"rollout"`
	// StepSeconds is the length of each point's span; the points of every revision cover the
	// same spans, from From to To.
	StepSeconds int64     `json:"stepSeconds"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	// Revisions has one entry per revision measured in the window, in increasing order.
	Revisions []RevisionSeries `json:"revisions"`
	// Business names the judge's business metrics that the points' Business maps hold, in
	// the spec's order; empty when the rollout's judge has none.
	Business []string `json:"business,omitempty"`
	// Message says why the series are partial (Kubernetes mode: where Prometheus is not
	// set, or could not be read); empty when they are whole.
	Message string `json:"message,omitempty"`
}

// RevisionSeries is one revision's points, oldest first, one per step.
type RevisionSeries struct {
	Revision int64         `json:"revision"`
	Points   []SeriesPoint `json:"points"`
	// Message says why the revision's points are empty or lack a measure; empty when they
	// were read whole.
	Message string `json:"message,omitempty"`
}

// SeriesPoint is one revision's requests over one step.
type SeriesPoint struct {
	// Time is the end of the step.
	Time time.Time `json:"time"`
	// Requests counts the finished requests; Rate is Requests per second of the step. In
	// Kubernetes mode Rate is Prometheus's rate over the 30 s before Time, and Requests and
	// Errors are derived from it (rounded to whole requests of a step).
	Requests int64   `json:"requests"`
	Rate     float64 `json:"rate"`
	// Errors counts the 5xx answers and the upstream failures (no answer, or a body cut
	// short) among Requests; ErrorShare is Errors/Requests, nil without requests.
	Errors     int64    `json:"errors"`
	ErrorShare *float64 `json:"errorShare"`
	// LatencyP95 and FirstTokenP95 are in seconds; nil without requests (without a first
	// body byte sent, for FirstTokenP95).
	LatencyP95    *float64 `json:"latencyP95"`
	FirstTokenP95 *float64 `json:"firstTokenP95"`
	// Business holds, per business metric of the judge, the share of the revision's answers
	// that were events (failed answers) in the step; absent when none was counted.
	Business map[string]float64 `json:"business,omitempty"`
}

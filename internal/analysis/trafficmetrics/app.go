package trafficmetrics

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"ramp.dev/ramp/internal/spec"
)

// App is the Selector.Router of the app's own series (spec.appMetrics): each revision's
// requests are the app's request counter and duration histogram with the revision's
// pod-template-hash in the series label the scrape's relabeling gives it.
const App = "app"

// AppSelector picks one revision's pods in the app's own series and in kube-state-metrics'
// and cAdvisor's.
type AppSelector struct {
	// Series are the names of the series and labels (spec.appMetrics with defaults).
	Series spec.AppMetricsSettings
	// Hash is the revision's pod-template-hash label.
	Hash string
	// PodPrefix is the start of the names of the revision's pods: its ReplicaSet's name and
	// a dash, as the ReplicaSet generates them (PodPrefix).
	PodPrefix string
}

// PodPrefix is the start of the name of every pod of ReplicaSet rs: the API server makes a
// generated name of the prefix rs + "-", cut to 58 characters, and 5 random characters.
func PodPrefix(rs string) string {
	p := rs + "-"
	if len(p) > 58 {
		p = p[:58]
	}
	return p
}

// appMatchers are the label matchers of the revision's own series.
func (s Selector) appMatchers() string {
	a := s.App.Series
	m := []string{
		fmt.Sprintf("%s=%s", a.NamespaceLabel, quote(s.Namespace)),
		fmt.Sprintf("%s=%s", a.RevisionLabel, quote(s.App.Hash)),
	}
	for _, k := range slices.Sorted(maps.Keys(a.MatchLabels)) {
		m = append(m, fmt.Sprintf("%s=%s", k, quote(a.MatchLabels[k])))
	}
	return strings.Join(m, ", ")
}

// podMatchers are the label matchers of the revision's pods in kube-state-metrics' and
// cAdvisor's series, which do not carry the pod's labels: the namespace, and the pod names
// its ReplicaSet generates. A name pattern rather than the pods ramp sees now, so that a pod
// that is gone still counts in a window that saw it, and a new one counts at once.
func (s Selector) podMatchers() string {
	a := s.App.Series
	return fmt.Sprintf("%s=%s, %s=~%s", a.NamespaceLabel, quote(s.Namespace), a.PodLabel, quote(regexpQuote(s.App.PodPrefix)+"[a-z0-9]{5}"))
}

// appErrors are the selectors whose sum counts the revision's 5xx requests: the status label
// when one is set, else status, and code on the series that have no status.
func (s Selector) appErrors() []string {
	a := s.App.Series
	if a.StatusLabel != "" {
		return []string{fmt.Sprintf(`%s{%s, %s=~"5.."}`, a.Requests, s.appMatchers(), a.StatusLabel)}
	}
	return []string{
		fmt.Sprintf(`%s{%s, status=~"5.."}`, a.Requests, s.appMatchers()),
		fmt.Sprintf(`%s{%s, status="", code=~"5.."}`, a.Requests, s.appMatchers()),
	}
}

// Unlabelled is the selector of the revision's request series that have neither a status
// nor a code label, whose errors cannot be told; empty when a status label is set.
func (s Selector) Unlabelled() string {
	if s.Router != App || s.App.Series.StatusLabel != "" {
		return ""
	}
	return fmt.Sprintf(`%s{%s, status="", code=""}`, s.App.Series.Requests, s.appMatchers())
}

// FirstTokenBuckets is the selector of the revision's first-token histogram buckets (in
// seconds); empty when the app has none (spec.appMetrics.firstToken).
func (s Selector) FirstTokenBuckets() string {
	if s.App == nil || s.App.Series.FirstToken == "" {
		return ""
	}
	return s.App.Series.FirstToken + "_bucket{" + s.appMatchers() + "}"
}

// Restarts is the selector of the revision's containers' restart counters
// (kube-state-metrics); empty without app series.
func (s Selector) Restarts() string {
	if s.App == nil {
		return ""
	}
	return s.App.Series.Restarts + "{" + s.podMatchers() + "}"
}

// CPU and Memory are the selectors of the revision's containers' CPU seconds and working
// set (cAdvisor), without the pod's own cgroup (container="") and pause container; empty
// without app series.
func (s Selector) CPU() string {
	return s.container(func(a spec.AppMetricsSettings) string { return a.CPU })
}
func (s Selector) Memory() string {
	return s.container(func(a spec.AppMetricsSettings) string { return a.Memory })
}

func (s Selector) container(name func(spec.AppMetricsSettings) string) string {
	if s.App == nil {
		return ""
	}
	return name(s.App.Series) + "{" + s.podMatchers() + `, container!="", container!="POD"}`
}

// Business are the selectors of a business metric's bad answers and of all its answers in
// the revision's own series.
func (s Selector) Business(metric string, events, total map[string]string) (bad, all string) {
	labels := func(extra map[string]string) string {
		m := s.appMatchers()
		for _, k := range slices.Sorted(maps.Keys(extra)) {
			m += fmt.Sprintf(", %s=%s", k, quote(extra[k]))
		}
		return m
	}
	return metric + "{" + labels(events) + "}", metric + "{" + labels(total) + "}"
}

// sumOf is the PromQL sum of f over sels: one sum, or, for several selectors, the sum of
// their sums with a missing one counting as 0.
func sumOf(sels []string, f func(string) string) string {
	if len(sels) == 1 {
		return "sum(" + f(sels[0]) + ")"
	}
	parts := make([]string, len(sels))
	for i, sel := range sels {
		parts[i] = "(sum(" + f(sel) + ") or vector(0))"
	}
	return strings.Join(parts, " + ")
}

func identity(s string) string { return s }

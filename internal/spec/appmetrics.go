package spec

import (
	"slices"

	"ramp.dev/ramp/api/v1alpha1"
)

// Defaults of spec.appMetrics: the names the Prometheus client libraries, kube-state-metrics,
// cAdvisor and a labelmap of Kubernetes pod labels give.
const (
	DefaultAppRequests       = "http_requests_total"
	DefaultAppDuration       = "http_request_duration_seconds"
	DefaultAppRestarts       = "kube_pod_container_status_restarts_total"
	DefaultAppCPU            = "container_cpu_usage_seconds_total"
	DefaultAppMemory         = "container_memory_working_set_bytes"
	DefaultAppRevisionLabel  = "pod_template_hash"
	DefaultAppNamespaceLabel = "namespace"
	DefaultAppPodLabel       = "pod"
	AppMetricsPreferRouter   = "router"
	AppMetricsPreferApp      = "app"
)

// AppMetricsSettings is spec.appMetrics with every default resolved.
type AppMetricsSettings struct {
	Prefer string
	// Requests, Duration, FirstToken (empty: none), Restarts, CPU and Memory are metric names.
	Requests, Duration, FirstToken, Restarts, CPU, Memory string
	// StatusLabel is empty for "status, else code".
	StatusLabel                             string
	RevisionLabel, NamespaceLabel, PodLabel string
	MatchLabels                             map[string]string
}

// AppMetrics resolves a's defaults; ok is false when a is nil (no app series).
func AppMetrics(a *v1alpha1.AppMetrics) (s AppMetricsSettings, ok bool) {
	if a == nil {
		return s, false
	}
	or := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	s = AppMetricsSettings{
		Prefer:         or(a.Prefer, AppMetricsPreferRouter),
		Requests:       or(a.Requests, DefaultAppRequests),
		Duration:       or(a.Duration, DefaultAppDuration),
		FirstToken:     a.FirstToken,
		Restarts:       or(a.Restarts, DefaultAppRestarts),
		CPU:            or(a.CPU, DefaultAppCPU),
		Memory:         or(a.Memory, DefaultAppMemory),
		StatusLabel:    a.StatusLabel,
		RevisionLabel:  or(a.RevisionLabel, DefaultAppRevisionLabel),
		NamespaceLabel: or(a.NamespaceLabel, DefaultAppNamespaceLabel),
		PodLabel:       or(a.PodLabel, DefaultAppPodLabel),
		MatchLabels:    a.MatchLabels,
	}
	return s, true
}

// validateAppMetrics checks spec.appMetrics: known prefer, metric and label names that
// Prometheus accepts, and distinct revision, namespace and pod labels.
func validateAppMetrics(l *errList, p string, a *v1alpha1.AppMetrics) {
	if a.Prefer != "" && a.Prefer != AppMetricsPreferRouter && a.Prefer != AppMetricsPreferApp {
		l.add(p+".prefer", a.Prefer, "is not router or app")
	}
	for _, f := range []struct{ name, v string }{
		{"requests", a.Requests}, {"duration", a.Duration}, {"firstToken", a.FirstToken},
		{"restarts", a.Restarts}, {"cpu", a.CPU}, {"memory", a.Memory},
	} {
		if f.v != "" && !metricName.MatchString(f.v) {
			l.add(p+"."+f.name, f.v, "is not a Prometheus metric name")
		}
	}
	for _, f := range []struct{ name, v string }{{"duration", a.Duration}, {"firstToken", a.FirstToken}} {
		if n := len(f.v); n > len("_bucket") && f.v[n-len("_bucket"):] == "_bucket" {
			l.add(p+"."+f.name, f.v, "names a histogram's _bucket series; give the histogram's name without _bucket")
		}
	}
	labels := map[string]string{}
	for _, f := range []struct{ name, v string }{
		{"statusLabel", a.StatusLabel}, {"revisionLabel", a.RevisionLabel},
		{"namespaceLabel", a.NamespaceLabel}, {"podLabel", a.PodLabel},
	} {
		if f.v == "" {
			continue
		}
		if !labelName.MatchString(f.v) || f.v == "le" {
			l.add(p+"."+f.name, f.v, "is not a Prometheus label name ramp can match on")
			continue
		}
		if other, ok := labels[f.v]; ok && f.name != "statusLabel" {
			l.add(p+"."+f.name, f.v, "is the same label as %s", other)
		}
		labels[f.v] = f.name
	}
	s, _ := AppMetrics(a)
	if s.RevisionLabel == s.NamespaceLabel || s.RevisionLabel == s.PodLabel || s.NamespaceLabel == s.PodLabel {
		if a.RevisionLabel == "" || a.NamespaceLabel == "" || a.PodLabel == "" {
			l.add(p, nil, "revisionLabel %q, namespaceLabel %q and podLabel %q must be three different labels", s.RevisionLabel, s.NamespaceLabel, s.PodLabel)
		}
	}
	validateLabelNames(l, p+".matchLabels", a.MatchLabels)
	for _, k := range slices.Compact(slices.Sorted(slices.Values([]string{s.RevisionLabel, s.NamespaceLabel, s.PodLabel}))) {
		if _, ok := a.MatchLabels[k]; ok {
			l.add(p+".matchLabels", k, "is the label ramp sets per revision; leave it out")
		}
	}
}

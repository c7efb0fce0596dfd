package analysis

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// Expand replaces the template variables in text, as providers do in queries, URLs and
// bodies: {{rollout}}, {{revision}}, {{baselineRevision}}, {{role}}, {{namespace}},
// {{service}}, {{interval}} (the metric's interval as a Prometheus duration, e.g. 30s; 1m
// when it has none), {{podTemplateHash}} and {{baselinePodTemplateHash}} (the
// pod-template-hash label of the revision's and the baseline's pods, Kubernetes mode) and
// {{args.NAME}}. Spaces inside the braces are allowed, as Flagger's
// {{ namespace }}. An unknown variable, a missing argument, or namespace or service when the
// target has none (local mode) is an error naming it.
func Expand(text string, m *v1alpha1.Metric, t Target) (string, error) {
	var errs []string
	out := spec.TemplateVar.ReplaceAllStringFunc(text, func(match string) string {
		name := spec.TemplateVar.FindStringSubmatch(match)[1]
		v, err := variable(name, m, t)
		if err != nil {
			errs = append(errs, err.Error())
			return match
		}
		return v
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("template: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

func variable(name string, m *v1alpha1.Metric, t Target) (string, error) {
	if arg, ok := strings.CutPrefix(name, "args."); ok {
		v, ok := t.Args[arg]
		if !ok {
			return "", fmt.Errorf("{{%s}}: no argument %q", name, arg)
		}
		return v, nil
	}
	switch name {
	case "rollout":
		return t.Rollout, nil
	case "revision":
		return strconv.FormatInt(t.Revision, 10), nil
	case "baselineRevision":
		return strconv.FormatInt(t.Baseline, 10), nil
	case "role":
		return t.Role, nil
	case "namespace", "service":
		v := t.Namespace
		if name == "service" {
			v = t.Service
		}
		if v == "" {
			return "", fmt.Errorf("{{%s}} has no value here (local mode has none; pass it as an argument)", name)
		}
		return v, nil
	case "podTemplateHash", "baselinePodTemplateHash":
		rev := t.Revision
		if name == "baselinePodTemplateHash" {
			rev = t.Baseline
		}
		if t.PodTemplateHashes == nil {
			return "", fmt.Errorf("{{%s}} has no value here (local mode has none)", name)
		}
		h := t.PodTemplateHashes[rev]
		if h == "" {
			return "", fmt.Errorf("{{%s}}: revision %d runs no pods yet", name, rev)
		}
		return h, nil
	case "interval":
		d, err := Duration(m.Interval)
		if err != nil {
			return "", fmt.Errorf("{{interval}}: %w", err)
		}
		if d == 0 {
			d = time.Minute
		}
		return PromDuration(d), nil
	}
	return "", fmt.Errorf("unknown variable {{%s}}; known: %s, args.NAME", name, strings.Join(spec.TemplateVariables, ", "))
}

// PromDuration writes d as a Prometheus duration: whole seconds ("90s"), else milliseconds.
func PromDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

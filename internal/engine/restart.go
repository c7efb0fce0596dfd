package engine

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// RestartBudget bounds how a restart replaces instances: Surge instances above replicas at a
// time (new ones started before old ones stop), and Unavailable below them (old ones stopped
// before their replacements are ready). When both are zero one instance at a time may be
// unavailable.
type RestartBudget struct {
	Surge, Unavailable int32
}

// restartBudget is the adapter's budget, or the rollout's own: its rollingUpdate maxSurge and
// maxUnavailable, else a surge of 25% of replicas (at least one) and none unavailable.
func (d *decision) restartBudget() RestartBudget {
	var b RestartBudget
	switch {
	case d.in.Restart != nil:
		b = *d.in.Restart
	case d.spec.Strategy.RollingUpdate != nil:
		ru := d.spec.Strategy.RollingUpdate
		b.Surge = scaledValue(ru.MaxSurge, spec.DefaultMaxSurge, d.replicas, true)
		b.Unavailable = scaledValue(ru.MaxUnavailable, spec.DefaultMaxUnavailable, d.replicas, false)
	default:
		b.Surge = max(1, scaledValue(nil, spec.DefaultMaxSurge, d.replicas, true))
	}
	if b.Surge <= 0 && b.Unavailable <= 0 {
		b.Unavailable = 1
	}
	return b
}

// restarting reports whether spec.restartAt asks for a restart that has not completed.
func (d *decision) restarting() bool {
	at := d.spec.RestartAt
	return at != nil && (d.st.RestartedAt == nil || d.st.RestartedAt.Before(at))
}

// restart replaces the instances of rev (the stable revision, which runs alone) that started
// before spec.restartAt: new instances start within the surge, and old ones stop only while
// at least replicas-unavailable others are ready, not-ready ones first, then the oldest. The
// adapter stops the instances of Output.Restart and keeps rev at Output.Scale, which starts
// their replacements. Once none is left and the new ones are available the restart is
// complete: status.restartedAt records it. It runs only when no other revision is rolling out; the caller makes sure of that.
func (d *decision) restart(rev int64) {
	if !d.restarting() {
		return
	}
	at := d.spec.RestartAt.Time
	if d.now.Before(at) {
		d.requeue(at)
		return
	}
	var old []Instance
	var ready int32
	for _, in := range d.in.Instances[rev] {
		if in.Terminating {
			continue
		}
		if in.Ready {
			ready++
		}
		if in.StartedAt.Before(at) {
			old = append(old, in)
		}
	}
	if len(old) == 0 {
		// Done once the new instances are available too, so that a completed restart is a
		// Healthy rollout again.
		if _, avail := d.counts(rev); avail < d.replicas {
			if d.st.Phase != v1alpha1.PhaseDegraded {
				d.st.Message = fmt.Sprintf("restarting revision %d: every instance replaced, %d/%d available", rev, avail, d.replicas)
			}
			return
		}
		t := metav1.NewTime(at)
		d.st.RestartedAt = &t
		d.event(EventNormal, "Restarted", fmt.Sprintf("restart of revision %d complete: every instance started after %s", rev, at.UTC().Format("2006-01-02T15:04:05Z")))
		return
	}
	b := d.restartBudget()
	// Not-ready old instances first (stopping them costs no capacity), then the oldest.
	slices.SortStableFunc(old, func(a, b Instance) int {
		if a.Ready != b.Ready {
			if !a.Ready {
				return -1
			}
			return 1
		}
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		// Kubernetes keeps start times to the second: the name decides, so that a decision
		// from a stale cache picks the same instance again rather than one more.
		return strings.Compare(a.ID, b.ID)
	})
	canStop := ready - (d.replicas - b.Unavailable)
	var stop []string
	for _, in := range old {
		switch {
		case !in.Ready:
		case canStop > 0:
			canStop--
		default:
			continue
		}
		stop = append(stop, in.ID)
		d.event(EventNormal, "Restarting", fmt.Sprintf("restart: replacing instance %s of revision %d", in.ID, rev))
	}
	d.out.Restart = stop
	left := int32(len(old) - len(stop))
	d.scale(rev, d.replicas+min(b.Surge, left))
	if d.st.Phase != v1alpha1.PhaseDegraded { // an aborted rollout's message keeps saying why
		d.st.Message = fmt.Sprintf("restarting revision %d: %d/%d instances still to replace, %d/%d ready", rev, left, d.replicas, ready, d.replicas)
	}
}

package driver

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// notifyingMode is a fakeMode with a Notifier that records what it is told.
type notifyingMode struct {
	*fakeMode
	persistErr error
	told       []told
}

type told struct {
	beforePhase v1alpha1.RolloutPhase
	phase       v1alpha1.RolloutPhase
	reasons     []string
}

func (m *notifyingMode) Notifier() Notifier { return m }
func (m *notifyingMode) Persist(ctx context.Context, r *v1alpha1.Rollout) error {
	if m.persistErr != nil {
		return m.persistErr
	}
	return m.fakeMode.Persist(ctx, r)
}
func (m *notifyingMode) Notify(before *v1alpha1.RolloutStatus, r *v1alpha1.Rollout, events []engine.Event, _ time.Time) {
	m.calls = append(m.calls, "notify")
	var reasons []string
	for _, e := range events {
		reasons = append(reasons, e.Reason)
	}
	m.told = append(m.told, told{before.Phase, r.Status.Phase, reasons})
}

// TestStepNotifiesAfterPersisting: the notifier hears a step's events once its status is
// stored, and nothing of a step whose status could not be stored (the next step decides it
// again and says it then).
func TestStepNotifiesAfterPersisting(t *testing.T) {
	m := &notifyingMode{fakeMode: newMode(t), persistErr: errors.New("conflict")}
	m.instances = map[int64][]engine.Instance{1: {{ID: "a", Ready: true, ReadySince: t0.Add(-time.Minute)}}}
	r := withHook(newRollout())
	if _, err := Step(context.Background(), m, r, t0); err == nil {
		t.Fatal("Step succeeded with a failing Persist")
	}
	if len(m.told) != 0 {
		t.Fatalf("notified of a step not stored: %+v", m.told)
	}
	m.persistErr = nil
	m.calls = nil
	r = withHook(newRollout())
	if _, err := Step(context.Background(), m, r, t0); err != nil {
		t.Fatal(err)
	}
	if len(m.told) != 1 || !slices.Equal(m.told[0].reasons, []string{"RolloutCompleted"}) || m.told[0].phase != v1alpha1.PhaseHealthy || m.told[0].beforePhase != "" {
		t.Fatalf("told %+v, want one notification of RolloutCompleted, phase '' to Healthy", m.told)
	}
	if i, j := slices.Index(m.calls, "persist"), slices.Index(m.calls, "notify"); i < 0 || j < i {
		t.Fatalf("calls %v: notify must come after persist", m.calls)
	}
	// A step that changes nothing notifies nothing.
	m.told = nil
	if _, err := Step(context.Background(), m, r, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(m.told) != 0 {
		t.Fatalf("a step with no change notified %+v", m.told)
	}
	// A rollout without notifications tells nothing.
	if _, err := Step(context.Background(), m, newRollout(), t0); err != nil {
		t.Fatal(err)
	}
	if len(m.told) != 0 {
		t.Fatalf("a rollout without notifications notified %+v", m.told)
	}
}

func withHook(r *v1alpha1.Rollout) *v1alpha1.Rollout {
	r.Spec.Notifications = []v1alpha1.Notification{{Name: "hook", URL: "http://127.0.0.1:1/hook"}}
	return r
}

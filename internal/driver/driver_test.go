package driver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/spec"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeMode records what the driver asks of it.
type fakeMode struct {
	instances map[int64][]engine.Instance
	measure   *analysis.Async
	carryErr  error
	revisions []int64
	// revision is the revision of the template; 0 means 1.
	revision int64
	// replicas, when set, is the replica count Observe says the engine decides on.
	replicas *int32
	// condition, when set, is a status condition Observe sets (as Kubernetes mode does).
	condition string

	calls     []string
	persisted []v1alpha1.RolloutStatus
	events    []engine.Event
	pruned    []int64
	judgeAt   time.Time
}

func (f *fakeMode) Observe(_ context.Context, r *v1alpha1.Rollout) (engine.Input, error) {
	f.calls = append(f.calls, "observe")
	if f.condition != "" {
		r.Status.Conditions = append(r.Status.Conditions, metav1.Condition{Type: f.condition, Status: metav1.ConditionTrue})
	}
	in := engine.Input{Revision: max(f.revision, 1), Instances: f.instances}
	if f.replicas != nil {
		in.Rollout = r.DeepCopy()
		in.Rollout.Spec.Replicas = f.replicas
	}
	return in, nil
}
func (f *fakeMode) Measurer() Measurer { return f.measure }
func (f *fakeMode) Target(r *v1alpha1.Rollout, _ v1alpha1.AnalysisKind) analysis.Target {
	return analysis.Target{Rollout: r.Name}
}
func (f *fakeMode) Template(_ context.Context, _ *v1alpha1.Rollout, name string) (*v1alpha1.AnalysisTemplate, error) {
	return nil, errors.New("not found")
}
func (f *fakeMode) Judge(context.Context, time.Time, *v1alpha1.Rollout, *v1alpha1.AnalysisRunStatus) time.Time {
	f.calls = append(f.calls, "judge")
	return f.judgeAt
}
func (f *fakeMode) CarryOut(_ context.Context, r *v1alpha1.Rollout, out engine.Output) error {
	f.calls = append(f.calls, "carry out")
	return f.carryErr
}
func (f *fakeMode) Persist(_ context.Context, r *v1alpha1.Rollout) error {
	f.calls = append(f.calls, "persist")
	f.persisted = append(f.persisted, *r.Status.DeepCopy())
	return nil
}
func (f *fakeMode) Record(_ *v1alpha1.Rollout, e engine.Event) {
	f.calls = append(f.calls, "record")
	f.events = append(f.events, e)
}
func (f *fakeMode) Revisions(context.Context, *v1alpha1.Rollout) ([]int64, error) {
	return f.revisions, nil
}
func (f *fakeMode) Prune(_ context.Context, _ *v1alpha1.Rollout, revs []int64) error {
	f.calls = append(f.calls, "prune")
	f.pruned = append(f.pruned, revs...)
	return nil
}

func newRollout() *v1alpha1.Rollout {
	r := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{
		Template: v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{Command: "v1"}},
		Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{}},
	}}
	r.Name = "app"
	spec.SetDefaults(r)
	r.Status.CurrentRevision = 1
	return r
}

func newMode(t *testing.T) *fakeMode {
	a := analysis.NewAsync(&analysis.Runner{}, nil)
	t.Cleanup(a.Close)
	return &fakeMode{measure: a}
}

func TestStepDecidesCarriesOutPersistsRecordsAndPrunes(t *testing.T) {
	m := newMode(t)
	m.instances = map[int64][]engine.Instance{1: {{ID: "a", Ready: true, ReadySince: t0.Add(-time.Minute)}}}
	m.revisions = []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	r := newRollout()
	res, err := Step(context.Background(), m, r, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status.StableRevision != 1 || r.Status.Phase != v1alpha1.PhaseHealthy || !res.Changed {
		t.Fatalf("after the first step: stable %d, %s, changed %v", r.Status.StableRevision, r.Status.Phase, res.Changed)
	}
	want := []string{"observe", "carry out", "persist", "record", "prune"}
	if !slices.Equal(m.calls, want) {
		t.Errorf("calls %v, want %v", m.calls, want)
	}
	if len(m.events) != 1 || m.events[0].Reason != "RolloutCompleted" {
		t.Errorf("events %+v, want RolloutCompleted", m.events)
	}
	// 11 revisions not in use beyond the default limit of 10: the oldest goes.
	if !slices.Equal(m.pruned, []int64{2}) {
		t.Errorf("pruned %v, want [2]", m.pruned)
	}

	// The same world again: nothing to persist, record or prune.
	m.calls = nil
	res, err = Step(context.Background(), m, r, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"observe", "carry out"}; !slices.Equal(m.calls, want) || res.Changed {
		t.Errorf("second step: calls %v (changed %v), want %v", m.calls, res.Changed, want)
	}
}

func TestStepDoesNotPersistWhatWasNotCarriedOut(t *testing.T) {
	m := newMode(t)
	m.instances = map[int64][]engine.Instance{1: {{ID: "a", Ready: true, ReadySince: t0.Add(-time.Minute)}}}
	m.carryErr = errors.New("port in use")
	r := newRollout()
	if _, err := Step(context.Background(), m, r, t0); err == nil || !strings.Contains(err.Error(), "port in use") {
		t.Fatalf("err = %v, want the carry-out error", err)
	}
	if len(m.persisted) != 0 || len(m.events) != 0 {
		t.Errorf("persisted %d statuses and recorded %v after a failed carry-out", len(m.persisted), m.events)
	}
}

func TestStepAsksForTheEngineRequeue(t *testing.T) {
	m := newMode(t)
	// Ready 10s ago with minReadySeconds 30: available in 20s, when the engine asks to decide again.
	m.instances = map[int64][]engine.Instance{1: {{ID: "a", Ready: true, ReadySince: t0.Add(-10 * time.Second)}}}
	r := newRollout()
	r.Spec.MinReadySeconds = 30
	res, err := Step(context.Background(), m, r, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(20 * time.Second); !res.Next.Equal(want) {
		t.Errorf("Next = %s, want %s", res.Next, want)
	}
}

func TestRunAnalysis(t *testing.T) {
	m := newMode(t)
	m.judgeAt = t0.Add(time.Second)
	r := newRollout()
	r.Status.Analysis = []v1alpha1.AnalysisRunStatus{
		{Name: "step-1-0", Kind: v1alpha1.AnalysisKindStep, Revision: 1,
			Spec: v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}},
		{Name: "judge-1", Kind: v1alpha1.AnalysisKindJudge, Revision: 1, Phase: v1alpha1.AnalysisRunning},
		{Name: "judge-0", Kind: v1alpha1.AnalysisKindJudge, Revision: 1, Phase: v1alpha1.AnalysisFailed},
	}
	next := RunAnalysis(context.Background(), m, t0, r)
	run := r.Status.Analysis[0]
	if run.Phase != v1alpha1.AnalysisError || run.Message != `analysis template "error-rate": not found` {
		t.Errorf("run with a missing template: %s %q", run.Phase, run.Message)
	}
	if len(m.events) != 1 || m.events[0].Reason != "AnalysisError" || !strings.Contains(m.events[0].Message, `analysis template "error-rate"`) {
		t.Errorf("events %+v, want one AnalysisError naming the template", m.events)
	}
	if n := slices.Index(m.calls, "judge"); n < 0 || slices.Index(m.calls[n+1:], "judge") >= 0 {
		t.Errorf("calls %v, want the running judge run stepped once and the failed one not", m.calls)
	}
	if !next.Equal(m.judgeAt) {
		t.Errorf("next = %s, want the judge's %s", next, m.judgeAt)
	}
}

// A decision that starts an analysis run asks to be stepped again at once, for the run's
// first measurement.
func TestStepAsksForAStartedRunAtOnce(t *testing.T) {
	m := newMode(t)
	m.instances = map[int64][]engine.Instance{1: {{ID: "a", Ready: true, ReadySince: t0.Add(-time.Minute)}}}
	r := newRollout()
	r.Spec.Strategy.Canary.Analysis = &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}
	weight := int32(20)
	r.Spec.Strategy.Canary.Steps = []v1alpha1.CanaryStep{{SetWeight: &weight}, {Pause: &v1alpha1.RolloutPause{}}}
	r.Status.StableRevision, r.Status.CurrentRevision = 1, 2
	m.instances[2] = []engine.Instance{{ID: "b", Ready: true, ReadySince: t0.Add(-time.Minute)}}
	m.revision = 2
	res, err := Step(context.Background(), m, r, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Status.Analysis) == 0 {
		t.Fatalf("no analysis run started: %s", r.Status.Message)
	}
	if !res.Next.Equal(t0) {
		t.Errorf("Next = %s, want now (%s) for the new run's first measurement", res.Next, t0)
	}
}

// A mode may have the engine decide on its own copy of the rollout (Kubernetes mode takes the
// replicas from the Deployment); the decision still lands in the rollout's status.
func TestStepDecidesOnTheModesCopy(t *testing.T) {
	m := newMode(t)
	three := int32(3)
	m.replicas = &three
	m.instances = map[int64][]engine.Instance{1: {{ID: "a", Ready: true, ReadySince: t0.Add(-time.Minute)}}}
	r := newRollout() // 1 replica in its own spec
	if _, err := Step(context.Background(), m, r, t0); err != nil {
		t.Fatal(err)
	}
	if r.Status.Phase != v1alpha1.PhaseProgressing || r.Status.StableRevision != 0 || !strings.Contains(r.Status.Message, "1/3") {
		t.Errorf("status %s, stable %d (%s); want revision 1 waiting for 3 instances", r.Status.Phase, r.Status.StableRevision, r.Status.Message)
	}
	if *r.Spec.Replicas != 1 {
		t.Errorf("the rollout's own spec changed: replicas %d", *r.Spec.Replicas)
	}
}

// What Observe changes of the status is a change of the step, persisted even when the
// decision changes nothing more.
func TestStepPersistsWhatObserveChanged(t *testing.T) {
	m := newMode(t)
	m.instances = map[int64][]engine.Instance{1: {{ID: "a", Ready: true, ReadySince: t0.Add(-time.Minute)}}}
	r := newRollout()
	if _, err := Step(context.Background(), m, r, t0); err != nil {
		t.Fatal(err)
	}
	m.calls, m.persisted = nil, nil
	m.condition = "Valid"
	if _, err := Step(context.Background(), m, r, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(m.calls, "persist") {
		t.Errorf("calls %v: the status Observe changed was not persisted", m.calls)
	}
}

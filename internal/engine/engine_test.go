package engine

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

// world is a fake of what an adapter does: it carries out Decide's scale output at once and
// lets the test say which revisions fail. Time moves only when the test moves it.
type world struct {
	t       *testing.T
	r       *v1alpha1.Rollout
	rev     int64
	now     time.Time
	inst    map[int64][]Instance
	unready map[int64]bool
	crash   map[int64]bool
	out     Output
	events  []Event
	seq     int
	// maxTotal and minAvail record the extremes of instances seen across decisions.
	maxTotal, minAvail int32
	// traffic and byReplicas go into every decision's Input (traffic_test.go).
	traffic    *Traffic
	byReplicas bool
	watchJudge bool
	// rollsItself and workload go into every decision's Input (rollsitself_test.go).
	rollsItself bool
	workload    *Workload
}

func newWorld(t *testing.T, spec v1alpha1.RolloutSpec) *world {
	t.Helper()
	w := &world{
		t: t, r: &v1alpha1.Rollout{Spec: spec}, rev: 1,
		now:  time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC),
		inst: map[int64][]Instance{}, unready: map[int64]bool{}, crash: map[int64]bool{},
		minAvail: 1 << 30,
	}
	w.r.Name = "chat-api"
	w.settle()
	if w.r.Status.Phase != v1alpha1.PhaseHealthy || w.r.Status.StableRevision != 1 {
		t.Fatalf("initial deploy: phase %s stable %d, want Healthy 1 (%s)", w.r.Status.Phase, w.r.Status.StableRevision, w.r.Status.Message)
	}
	return w
}

func ptr[T any](v T) *T { return &v }

// decide runs one decision and carries out its scale output.
func (w *world) decide() {
	w.t.Helper()
	w.out = Decide(Input{Rollout: w.r, Revision: w.rev, Instances: w.inst, Now: w.now, Traffic: w.traffic, WatchJudge: w.watchJudge,
		Capabilities: Capabilities{WeightsByReplicas: w.byReplicas, RollsItself: w.rollsItself}, Workload: w.workload})
	w.r.Status = w.out.Status
	w.events = append(w.events, w.out.Events...)
	next := map[int64][]Instance{}
	var total, avail int32
	for rev, n := range w.out.Scale {
		have := w.inst[rev]
		for int32(len(have)) > n {
			have = have[:len(have)-1]
		}
		for int32(len(have)) < n {
			w.seq++
			in := Instance{ID: fmt.Sprintf("r%d-%d", rev, w.seq), StartedAt: w.now}
			if w.crash[rev] {
				in.CrashLooping, in.Restarts, in.LastExit = true, 3, "exited with status 3"
				in.Message = "readiness probe GET /healthz: 503 Service Unavailable"
			} else if w.unready[rev] {
				in.Message = "readiness probe GET /healthz: 503 Service Unavailable"
			} else {
				in.Ready, in.ReadySince = true, w.now
			}
			have = append(have, in)
		}
		next[rev] = have
		total += int32(len(have))
		for _, in := range have {
			if in.Ready {
				avail++
			}
		}
	}
	w.inst = next
	w.maxTotal = max(w.maxTotal, total)
	if w.r.Status.StableRevision != 0 {
		w.minAvail = min(w.minAvail, avail)
	}
	var sum int32
	for _, v := range w.out.Routes.Weights {
		sum += v
	}
	if len(w.out.Routes.Weights) > 0 && sum != 100 {
		w.t.Fatalf("weights %v add up to %d, not 100", w.out.Routes.Weights, sum)
	}
}

// settle decides until the status stops changing.
func (w *world) settle() {
	w.t.Helper()
	for range 50 {
		before := w.r.Status
		w.decide()
		if reflect.DeepEqual(before, w.r.Status) {
			return
		}
	}
	w.t.Fatalf("no steady state after 50 decisions: %+v", w.r.Status)
}

func (w *world) apply(rev int64) {
	w.rev = rev
	w.settle()
}

func (w *world) advance(d time.Duration) {
	w.now = w.now.Add(d)
	w.settle()
}

func (w *world) wantPhase(p v1alpha1.RolloutPhase, msgPart string) {
	w.t.Helper()
	if w.r.Status.Phase != p || !strings.Contains(w.r.Status.Message, msgPart) {
		w.t.Fatalf("phase %s message %q, want %s containing %q", w.r.Status.Phase, w.r.Status.Message, p, msgPart)
	}
}

// wantBackOn1 wants the rollout Degraded (its message containing msgPart) with all traffic on
// revision 1 and only its replicas instances.
func (w *world) wantBackOn1(msgPart string, replicas int32) {
	w.t.Helper()
	w.wantPhase(v1alpha1.PhaseDegraded, msgPart)
	w.wantWeights(map[int64]int32{1: 100})
	w.wantScale(map[int64]int32{1: replicas})
}

func (w *world) wantWeights(want map[int64]int32) {
	w.t.Helper()
	got := map[int64]int32{}
	for k, v := range w.out.Routes.Weights {
		if v != 0 {
			got[k] = v
		}
	}
	if !reflect.DeepEqual(got, want) {
		w.t.Fatalf("weights %v, want %v (status %s: %s)", got, want, w.r.Status.Phase, w.r.Status.Message)
	}
}

func (w *world) wantScale(want map[int64]int32) {
	w.t.Helper()
	if !reflect.DeepEqual(w.out.Scale, want) {
		w.t.Fatalf("scale %v, want %v (status %s: %s)", w.out.Scale, want, w.r.Status.Phase, w.r.Status.Message)
	}
}

func (w *world) wantStep(i int32) {
	w.t.Helper()
	if w.r.Status.CurrentStepIndex == nil || *w.r.Status.CurrentStepIndex != i {
		w.t.Fatalf("step index %v, want %d (%s)", w.r.Status.CurrentStepIndex, i, w.r.Status.Message)
	}
}

func (w *world) wantEvent(reason string) {
	w.t.Helper()
	for _, e := range w.events {
		if e.Reason == reason {
			return
		}
	}
	w.t.Fatalf("no %s event in %+v", reason, w.events)
}

// setRun gives the named analysis run a phase, as the analysis runner would.
func (w *world) setRun(prefix string, phase v1alpha1.AnalysisPhase, msg string) {
	w.t.Helper()
	for i := range w.r.Status.Analysis {
		if strings.HasPrefix(w.r.Status.Analysis[i].Name, prefix) {
			w.r.Status.Analysis[i].Phase = phase
			w.r.Status.Analysis[i].Message = msg
			w.settle()
			return
		}
	}
	w.t.Fatalf("no analysis run %s* in %+v", prefix, w.r.Status.Analysis)
}

var analysisRef = v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "errors"}}}

// canarySpec is a canary with the judge turned off; judge_test.go turns it on.
func canarySpec(steps ...v1alpha1.CanaryStep) v1alpha1.RolloutSpec {
	return v1alpha1.RolloutSpec{
		Replicas:                ptr(int32(4)),
		ProgressDeadlineSeconds: ptr(int32(60)),
		Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
			Steps: steps, Judge: &v1alpha1.CanaryJudge{Enabled: ptr(false)},
		}},
	}
}

func TestCanaryEveryStepType(t *testing.T) {
	w := newWorld(t, canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(25))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
		v1alpha1.CanaryStep{SetHeaderRoute: &v1alpha1.SetHeaderRoute{Name: "x-version", Match: []v1alpha1.HeaderMatch{{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}}},
			CookieMatch: []v1alpha1.CookieMatch{{CookieName: "beta", CookieValue: v1alpha1.StringMatch{Exact: "1"}}}}},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(50))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{Duration: ptr(intstr.FromString("30s"))}},
		v1alpha1.CanaryStep{Analysis: &analysisRef},
		v1alpha1.CanaryStep{SetCanaryScale: &v1alpha1.SetCanaryScale{Replicas: ptr(int32(3))}},
		v1alpha1.CanaryStep{SetCanaryScale: &v1alpha1.SetCanaryScale{MatchTrafficWeight: true}},
	))
	w.apply(2)
	// Step 0 done (weight 25, one canary instance), waiting at the indefinite pause.
	w.wantStep(1)
	w.wantPhase(v1alpha1.PhasePaused, "paused until `ramp promote`")
	w.wantWeights(map[int64]int32{1: 75, 2: 25})
	w.wantScale(map[int64]int32{1: 4, 2: 1})
	if w.r.Status.CanaryRevision != 2 || w.r.Status.StableRevision != 1 {
		t.Fatalf("canary %d stable %d", w.r.Status.CanaryRevision, w.r.Status.StableRevision)
	}
	// Time alone does not end an indefinite pause.
	w.advance(time.Hour)
	w.wantStep(1)
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	// Header route set, weight 50 (two canary instances), now in the 30 s pause.
	w.wantStep(4)
	w.wantPhase(v1alpha1.PhasePaused, "paused for 30s")
	w.wantWeights(map[int64]int32{1: 50, 2: 50})
	w.wantScale(map[int64]int32{1: 4, 2: 2})
	if hr := w.out.Routes.HeaderRoutes; len(hr) != 1 || hr[0].Revision != 2 || hr[0].Match[0].HeaderValue.Exact != "canary" ||
		len(hr[0].CookieMatch) != 1 || hr[0].CookieMatch[0].CookieName != "beta" {
		t.Fatalf("header routes %+v", hr)
	}
	if w.out.Requeue.IsZero() || !w.out.Requeue.Equal(w.now.Add(30*time.Second)) {
		t.Fatalf("requeue %v, want the pause's end", w.out.Requeue)
	}
	w.advance(29 * time.Second)
	w.wantStep(4)
	w.advance(time.Second)
	// The analysis step runs.
	w.wantStep(5)
	w.wantPhase(v1alpha1.PhaseProgressing, "analysis")
	if len(w.r.Status.Analysis) != 1 || w.r.Status.Analysis[0].Phase != v1alpha1.AnalysisPending || w.r.Status.Analysis[0].BaselineRevision != 1 {
		t.Fatalf("analysis %+v", w.r.Status.Analysis)
	}
	w.setRun("step-2-step5", v1alpha1.AnalysisSuccessful, "")
	// setCanaryScale 3 then back to weight (50% of 4 = 2), then all steps done: promoted.
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantWeights(map[int64]int32{2: 100})
	w.wantScale(map[int64]int32{1: 4, 2: 4}) // revision 1 stays warm in the watch window
	w.wantStep(8)
	w.wantEvent("RolloutCompleted")
	if w.r.Status.CanaryRevision != 0 || w.r.Status.StableRevision != 2 || len(w.out.Routes.HeaderRoutes) != 0 {
		t.Fatalf("after promotion: %+v", w.r.Status)
	}
	// The finished analysis run stays visible.
	if len(w.r.Status.Analysis) != 1 || w.r.Status.Analysis[0].Phase != v1alpha1.AnalysisSuccessful {
		t.Fatalf("analysis after promotion %+v", w.r.Status.Analysis)
	}
}

func TestCanaryScaleStepWaitsForInstances(t *testing.T) {
	w := newWorld(t, canarySpec(
		v1alpha1.CanaryStep{SetCanaryScale: &v1alpha1.SetCanaryScale{Weight: ptr(int32(50))}},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
	))
	w.unready[2] = true
	w.apply(2)
	w.wantStep(0)
	w.wantScale(map[int64]int32{1: 4, 2: 2})
	w.wantWeights(map[int64]int32{1: 100})
}

func TestCanaryAnalysisFailureAbortsAndRetryRunsAgain(t *testing.T) {
	w := newWorld(t, canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(25))},
		v1alpha1.CanaryStep{Analysis: &analysisRef},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(50))},
	))
	w.apply(2)
	w.wantStep(1)
	w.setRun("step-2", v1alpha1.AnalysisFailed, `metric "error-rate" failed`)
	w.wantBackOn1(`analysis step-2-step1 failed: metric "error-rate" failed`, 4)
	w.wantEvent("RolloutAborted")
	if !w.r.Status.Abort || w.r.Status.AbortedRevision != 2 || w.r.Status.CurrentRevision != 2 {
		t.Fatalf("abort state %+v", w.r.Status)
	}
	// Aborted stays aborted as time passes; promote is refused.
	w.advance(time.Hour)
	w.wantPhase(v1alpha1.PhaseDegraded, "aborted")
	if err := Promote(w.r, false); !errors.Is(err, ErrAborted) {
		t.Fatalf("promote on aborted: %v", err)
	}
	if err := Retry(w.r, w.now); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantStep(1)
	w.wantPhase(v1alpha1.PhaseProgressing, "analysis")
	w.wantWeights(map[int64]int32{1: 75, 2: 25})
	if err := Retry(w.r, w.now); !errors.Is(err, ErrNotAborted) {
		t.Fatalf("retry when not aborted: %v", err)
	}
}

func TestCanaryBackgroundAnalysis(t *testing.T) {
	spec := canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}})
	spec.Strategy.Canary.Analysis = &analysisRef
	w := newWorld(t, spec)
	w.apply(2)
	w.wantStep(1)
	if len(w.r.Status.Analysis) != 1 || w.r.Status.Analysis[0].Kind != v1alpha1.AnalysisKindBackground {
		t.Fatalf("background run %+v", w.r.Status.Analysis)
	}
	w.setRun("background-2", v1alpha1.AnalysisError, "provider unreachable")
	w.wantPhase(v1alpha1.PhaseDegraded, "analysis background-2 errored: provider unreachable")
	w.wantWeights(map[int64]int32{1: 100})
}

func TestInconclusivePausesForAHuman(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Analysis: &analysisRef}))
	w.apply(2)
	w.setRun("step-2", v1alpha1.AnalysisInconclusive, "only 3 requests")
	w.wantPhase(v1alpha1.PhasePaused, "inconclusive: only 3 requests")
	w.wantWeights(map[int64]int32{1: 75, 2: 25})
	// Resume runs the analysis again.
	Resume(w.r)
	w.settle()
	w.wantPhase(v1alpha1.PhaseProgressing, "analysis")
	if w.r.Status.Analysis[0].Phase != v1alpha1.AnalysisPending {
		t.Fatalf("analysis not restarted: %+v", w.r.Status.Analysis)
	}
	// Promote goes on without it.
	w.setRun("step-2", v1alpha1.AnalysisInconclusive, "only 3 requests")
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
}

func TestPromoteFullSkipsStepsAndAnalysis(t *testing.T) {
	spec := canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(10))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}, v1alpha1.CanaryStep{Analysis: &analysisRef})
	spec.Strategy.Canary.Analysis = &analysisRef
	w := newWorld(t, spec)
	if err := Promote(w.r, true); !errors.Is(err, ErrNotInProgress) {
		t.Fatalf("promote with nothing in progress: %v", err)
	}
	w.apply(2)
	w.wantStep(1)
	if err := Promote(w.r, true); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantEvent("PromotedFull")
}

func TestUserPauseAndResume(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}))
	w.r.Spec.Paused = true
	w.apply(2)
	w.wantStep(0)
	w.wantPhase(v1alpha1.PhasePaused, "paused by user")
	// A pause stops the progress deadline too.
	w.advance(time.Hour)
	w.wantPhase(v1alpha1.PhasePaused, "paused by user")
	Resume(w.r)
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
}

func TestCrashLoopAborts(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}))
	w.crash[2] = true
	w.apply(2)
	w.wantPhase(v1alpha1.PhaseDegraded, "revision 2 is crash-looping: instance r2-")
	w.wantBackOn1("restarted 3 times: exited with status 3", 4)
}

// exit records n more exits of the i-th instance of rev, first started at created.
func (w *world) exit(rev int64, i int, n int32, created time.Time) {
	in := &w.inst[rev][i]
	in.Exits += n
	in.CreatedAt, in.LastExit = created, "exited with status 3"
}

func TestOneExitOfTheCanaryAbortsWhenStableHadNone(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.apply(2)
	created := w.now
	for i := range w.inst[1] {
		w.inst[1][i].CreatedAt = created.Add(-time.Hour)
	}
	w.advance(30 * time.Second)
	w.wantPhase(v1alpha1.PhasePaused, "")
	// Ready for 30 s, then one exit (far from a crash loop): it restarts and is ready again.
	w.exit(2, 0, 1, created)
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhaseDegraded, "revision 2 exited unexpectedly: instance r2-")
	w.wantPhase(v1alpha1.PhaseDegraded, "exited with status 3 (1 exits in 0.009 instance-hours; revision 1: 0 in 4.034)")
	w.wantWeights(map[int64]int32{1: 100})
	w.wantEvent("RolloutAborted")
}

func TestCanaryExitsAreWeighedAgainstStables(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	// Stable: 4 instances up 10 minutes, 4 exits.
	for i := range w.inst[1] {
		w.inst[1][i].CreatedAt = w.now.Add(-10 * time.Minute)
	}
	w.exit(1, 0, 4, w.now.Add(-10*time.Minute))
	w.apply(2)
	created := w.now
	w.advance(30 * time.Minute)
	w.wantPhase(v1alpha1.PhasePaused, "")
	// Stable's own exits never fail the canary; one canary exit in half an hour is 2 per
	// instance-hour against stable's 4 in 4×40 min, 1.5: under twice stable's.
	w.exit(2, 0, 1, created)
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhasePaused, "")
	// Three more: 8 per instance-hour, more than twice stable's.
	w.exit(2, 0, 3, created)
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhaseDegraded, "revision 2 exited unexpectedly: instance r2-")
	w.wantWeights(map[int64]int32{1: 100})
}

func TestReadinessFailureAbortsAtTheProgressDeadline(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}))
	w.unready[2] = true
	w.apply(2)
	w.wantPhase(v1alpha1.PhaseProgressing, "step 1/1")
	// The canary never gets traffic while it is not ready.
	w.wantWeights(map[int64]int32{1: 75, 2: 25})
	if n := len(w.inst[2]); n != 1 || w.inst[2][0].Ready {
		t.Fatalf("canary instances %+v", w.inst[2])
	}
	w.advance(59 * time.Second)
	w.wantPhase(v1alpha1.PhaseProgressing, "step 1/1")
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhaseDegraded, "revision 2 made no progress for 1m0s: 0/1 instances ready; instance r2-5: readiness probe GET /healthz: 503")
	w.wantScale(map[int64]int32{1: 4})
}

func TestNewRevisionReplacesCanaryAndUndoToStableIsImmediate(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.apply(2)
	w.wantStep(1)
	w.apply(3)
	w.wantEvent("RolloutRestarted")
	w.wantStep(1)
	w.wantScale(map[int64]int32{1: 4, 3: 1})
	// Going back to the stable template stops the canary at once.
	w.apply(1)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 1 is stable")
	w.wantScale(map[int64]int32{1: 4})
	w.wantEvent("RolloutReverted")
}

func TestUserAbort(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	if err := Abort(w.r); !errors.Is(err, ErrNotInProgress) {
		t.Fatalf("abort with nothing in progress: %v", err)
	}
	w.apply(2)
	if err := Abort(w.r); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantBackOn1("aborted: by user", 4)
}

func blueGreenSpec(bg v1alpha1.BlueGreenStrategy) v1alpha1.RolloutSpec {
	return v1alpha1.RolloutSpec{
		Replicas:                ptr(int32(2)),
		ProgressDeadlineSeconds: ptr(int32(60)),
		Strategy:                v1alpha1.Strategy{BlueGreen: &bg},
	}
}

func TestBlueGreenAutoPromotionAndScaleDownDelay(t *testing.T) {
	w := newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{ScaleDownDelaySeconds: ptr(int32(30))}))
	if w.r.Status.ActiveRevision != 1 {
		t.Fatalf("active %d", w.r.Status.ActiveRevision)
	}
	w.apply(2)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantWeights(map[int64]int32{2: 100})
	// The old active keeps running for the delay so a switch back needs no start-up.
	w.wantScale(map[int64]int32{1: 2, 2: 2})
	w.wantEvent("Switched")
	w.advance(30 * time.Second)
	w.wantScale(map[int64]int32{2: 2})
}

func TestBlueGreenManualPromotionWithPreview(t *testing.T) {
	w := newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{
		AutoPromotionEnabled: ptr(false), PreviewReplicaCount: ptr(int32(1)),
		PrePromotionAnalysis: &analysisRef,
	}))
	w.apply(2)
	// The preview runs at its own scale, reachable on the preview address only.
	w.wantScale(map[int64]int32{1: 2, 2: 1})
	w.wantWeights(map[int64]int32{1: 100})
	if w.out.Routes.Preview != 2 || w.r.Status.PreviewRevision != 2 || w.r.Status.ActiveRevision != 1 {
		t.Fatalf("preview %d status %+v", w.out.Routes.Preview, w.r.Status)
	}
	w.wantPhase(v1alpha1.PhaseProgressing, "waiting for pre-promotion analysis")
	w.setRun("prePromotion-2", v1alpha1.AnalysisSuccessful, "")
	w.wantPhase(v1alpha1.PhasePaused, "`ramp promote` switches traffic")
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantWeights(map[int64]int32{2: 100})
	if w.r.Status.ActiveRevision != 2 || w.out.Routes.Preview != 0 {
		t.Fatalf("after switch %+v", w.r.Status)
	}
}

func TestBlueGreenAutoPromotionSeconds(t *testing.T) {
	w := newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{AutoPromotionEnabled: ptr(false), AutoPromotionSeconds: 20}))
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "ramp promote")
	w.advance(20 * time.Second)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
}

func TestBlueGreenPrePromotionFailureAborts(t *testing.T) {
	w := newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{PrePromotionAnalysis: &analysisRef}))
	w.apply(2)
	w.setRun("prePromotion-2", v1alpha1.AnalysisFailed, "smoke test exited 1")
	w.wantBackOn1("smoke test exited 1", 2)
	if w.out.Routes.Preview != 0 {
		t.Fatalf("preview still routed: %d", w.out.Routes.Preview)
	}
}

func TestBlueGreenPostPromotionFailureSwitchesBack(t *testing.T) {
	w := newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{PostPromotionAnalysis: &analysisRef}))
	w.apply(2)
	// Switched, but stable only once post-promotion analysis passes.
	w.wantWeights(map[int64]int32{2: 100})
	w.wantScale(map[int64]int32{1: 2, 2: 2})
	if w.r.Status.ActiveRevision != 2 || w.r.Status.StableRevision != 1 {
		t.Fatalf("after switch %+v", w.r.Status)
	}
	w.setRun("postPromotion-2", v1alpha1.AnalysisFailed, "error rate 0.3")
	w.wantBackOn1("error rate 0.3", 2)
	if w.r.Status.ActiveRevision != 1 {
		t.Fatalf("active after switch back: %d", w.r.Status.ActiveRevision)
	}
}

func TestRollingUpdateKeepsTheAvailabilityBound(t *testing.T) {
	cases := []struct {
		name              string
		surge, unavail    intstr.IntOrString
		maxTotal, minAvai int32
	}{
		{"surge 1 unavailable 0", intstr.FromInt32(1), intstr.FromInt32(0), 5, 4},
		{"surge 0 unavailable 1", intstr.FromInt32(0), intstr.FromInt32(1), 4, 3},
		{"percent", intstr.FromString("50%"), intstr.FromString("25%"), 6, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, v1alpha1.RolloutSpec{
				Replicas: ptr(int32(4)),
				Strategy: v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavail,
					ScaleDownDelaySeconds: ptr(int32(0))}}, // no warm instances: the bound is on every instance
			})
			w.maxTotal, w.minAvail = 0, 1<<30
			w.apply(2)
			w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
			w.wantScale(map[int64]int32{2: 4})
			w.wantWeights(map[int64]int32{2: 100})
			if w.maxTotal > tc.maxTotal || w.minAvail < tc.minAvai {
				t.Fatalf("instances peaked at %d (bound %d), availability fell to %d (bound %d)", w.maxTotal, tc.maxTotal, w.minAvail, tc.minAvai)
			}
		})
	}
}

func TestRollingUpdateTrafficFollowsReadyInstances(t *testing.T) {
	w := newWorld(t, v1alpha1.RolloutSpec{
		Replicas: ptr(int32(4)),
		Strategy: v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0))}},
	})
	w.rev = 2
	w.decide() // scale up one new
	w.decide() // observe it ready, scale down one old
	if got := w.out.Routes.Weights[2]; got != 25 {
		t.Fatalf("new revision weight %d with 1 of 4 serving instances, want 25 (%v)", got, w.out.Routes.Weights)
	}
}

func TestRollingUpdateUnreadyIsUndone(t *testing.T) {
	w := newWorld(t, v1alpha1.RolloutSpec{
		Replicas:                ptr(int32(3)),
		ProgressDeadlineSeconds: ptr(int32(10)),
		Strategy:                v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{}},
	})
	w.unready[2] = true
	w.apply(2)
	w.wantPhase(v1alpha1.PhaseProgressing, "rolling update to revision 2")
	w.wantWeights(map[int64]int32{1: 100})
	w.advance(10 * time.Second)
	w.wantPhase(v1alpha1.PhaseDegraded, "made no progress")
	w.wantScale(map[int64]int32{1: 3})
}

func TestMinReadySeconds(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.r.Spec.MinReadySeconds = 5
	w.apply(2)
	w.wantStep(0)
	if !w.out.Requeue.Equal(w.now.Add(5 * time.Second)) {
		t.Fatalf("requeue %v, want when the canary becomes available", w.out.Requeue)
	}
	w.advance(5 * time.Second)
	w.wantStep(1)
}

func TestFirstRevisionThatCrashesDegrades(t *testing.T) {
	w := &world{
		t: t, r: &v1alpha1.Rollout{Spec: canarySpec()}, rev: 1,
		now:  time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC),
		inst: map[int64][]Instance{}, unready: map[int64]bool{}, crash: map[int64]bool{1: true},
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseDegraded, "crash-looping")
	w.wantScale(map[int64]int32{1: 4})
}

func TestDecideIsPure(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.apply(2)
	in := Input{Rollout: w.r, Revision: 2, Instances: w.inst, Now: w.now}
	before := w.r.Status
	a, b := Decide(in), Decide(in)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two decisions on the same input differ")
	}
	if !reflect.DeepEqual(before, w.r.Status) {
		t.Fatal("Decide changed its input")
	}
}

// backgroundAnalysisWorld is a canary (25%, a 30 s pause, 50%) with a background analysis,
// revision 2 applied.
func backgroundAnalysisWorld(t *testing.T) *world {
	spec := canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(25))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{Duration: ptr(intstr.FromString("30s"))}},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(50))},
	)
	spec.Strategy.Canary.Analysis = &analysisRef
	w := newWorld(t, spec)
	w.apply(2)
	return w
}

// An inconclusive background analysis pauses the rollout, and a paused rollout takes no step:
// neither a timed pause ending nor the last step promotes it until a human resumes or promotes.
func TestInconclusiveBackgroundAnalysisHoldsTheSteps(t *testing.T) {
	w := backgroundAnalysisWorld(t)
	w.wantStep(1)
	w.setRun("background-2", v1alpha1.AnalysisInconclusive, "only 0 requests")
	w.wantPhase(v1alpha1.PhasePaused, "analysis background-2 is inconclusive: only 0 requests")
	w.advance(time.Minute) // the timed pause is over
	w.wantPhase(v1alpha1.PhasePaused, "analysis background-2 is inconclusive")
	w.wantStep(1)
	w.wantWeights(map[int64]int32{1: 75, 2: 25})
	if w.r.Status.StableRevision != 1 {
		t.Fatalf("revision %d promoted while paused", w.r.Status.StableRevision)
	}
	// Resume runs the background analysis again, and the steps go on.
	Resume(w.r)
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "")
	if w.r.Status.StableRevision != 2 {
		t.Fatalf("stable %d after resume, want 2 (%s)", w.r.Status.StableRevision, w.r.Status.Message)
	}
}

// `ramp promote` goes on without an inconclusive background analysis.
func TestPromoteGoesOnPastAnInconclusiveBackgroundAnalysis(t *testing.T) {
	w := backgroundAnalysisWorld(t)
	w.setRun("background-2", v1alpha1.AnalysisInconclusive, "only 0 requests")
	w.advance(time.Minute)
	w.wantStep(1)
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "")
	if w.r.Status.StableRevision != 2 {
		t.Fatalf("stable %d after promote, want 2 (%s)", w.r.Status.StableRevision, w.r.Status.Message)
	}
}

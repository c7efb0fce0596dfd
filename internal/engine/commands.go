package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
)

// Errors of the user commands. They mean the command does not fit the rollout's state.
var (
	ErrNotInProgress = errors.New("no revision is rolling out")
	ErrAborted       = errors.New("the rollout is aborted; `ramp retry` runs it again")
	ErrNotAborted    = errors.New("the rollout is not aborted")
	ErrNoStable      = errors.New("no revision is stable yet: there is nothing to restart")
)

// InProgress is the revision a rollout is rolling out, or 0 when none.
func InProgress(r *v1alpha1.Rollout) int64 {
	st := &r.Status
	if st.CurrentRevision != 0 && st.CurrentRevision != st.StableRevision {
		return st.CurrentRevision
	}
	return 0
}

// Promote ends the current step or pause (full: skips every remaining step and analysis).
func Promote(r *v1alpha1.Rollout, full bool) error {
	if InProgress(r) == 0 {
		return fmt.Errorf("promote %s: %w", r.Name, ErrNotInProgress)
	}
	if r.Status.Abort {
		return fmt.Errorf("promote %s: %w", r.Name, ErrAborted)
	}
	if full {
		r.Status.PromoteFull = true
	} else {
		r.Status.Promote = true
	}
	// Promote also ends a wait on an inconclusive analysis.
	r.Status.PauseConditions = slices.DeleteFunc(r.Status.PauseConditions, func(c v1alpha1.PauseCondition) bool {
		return c.Reason == v1alpha1.PauseReasonInconclusive
	})
	for i := range r.Status.Analysis {
		if r.Status.Analysis[i].Phase == v1alpha1.AnalysisInconclusive {
			r.Status.Analysis[i].Phase = v1alpha1.AnalysisSuccessful
			r.Status.Analysis[i].Message = "inconclusive; promoted by user"
		}
	}
	return nil
}

// Abort stops the revision under way: all traffic goes to stable and the new instances stop.
// Inside the watch window after a promotion it switches traffic back to the previous
// revision's warm instances at once. The spec is kept, so Retry runs it again.
func Abort(r *v1alpha1.Rollout) error {
	rev := InProgress(r)
	if rev == 0 && WatchOpen(r) {
		SwitchBack(&r.Status, "by user")
		return nil
	}
	if rev == 0 {
		return fmt.Errorf("abort %s: %w", r.Name, ErrNotInProgress)
	}
	if r.Status.Abort {
		return nil
	}
	r.Status.Abort = true
	r.Status.AbortedRevision = rev
	r.Status.Message = "aborted: by user"
	return nil
}

// Retry runs an aborted revision again from its first step.
func Retry(r *v1alpha1.Rollout, now time.Time) error {
	if !r.Status.Abort {
		return fmt.Errorf("retry %s: %w", r.Name, ErrNotAborted)
	}
	st := &r.Status
	st.Abort = false
	st.AbortedRevision = 0
	st.Message = "retrying"
	// Forget the aborted attempt so that Decide starts the revision afresh.
	st.CanaryRevision = 0
	st.PreviewRevision = 0
	if st.ActiveRevision != 0 {
		st.ActiveRevision = st.StableRevision
	}
	st.Analysis = nil
	st.Gates = KeepUnansweredCalls(st.Gates) // the retry asks its gates again
	t := metav1.NewTime(now)
	st.LastProgressTime = &t
	return nil
}

// Resume clears a user pause and runs inconclusive analysis again.
func Resume(r *v1alpha1.Rollout) {
	r.Spec.Paused = false
	r.Status.PauseConditions = slices.DeleteFunc(r.Status.PauseConditions, func(c v1alpha1.PauseCondition) bool {
		return c.Reason == v1alpha1.PauseReasonInconclusive || c.Reason == v1alpha1.PauseReasonUser
	})
	r.Status.Analysis = slices.DeleteFunc(r.Status.Analysis, func(a v1alpha1.AnalysisRunStatus) bool {
		return a.Phase == v1alpha1.AnalysisInconclusive
	})
}

// Restart asks for new instances of the stable revision: spec.restartAt becomes the next whole
// second after now (the API keeps times to the second, and so every instance that started
// before the command is replaced, and none that started after it). It returns what happens,
// for the user.
func Restart(r *v1alpha1.Rollout, now time.Time) (string, error) {
	st := &r.Status
	if st.StableRevision == 0 {
		return "", fmt.Errorf("restart %s: %w", r.Name, ErrNoStable)
	}
	at := metav1.NewTime(now.Truncate(time.Second).Add(time.Second))
	r.Spec.RestartAt = &at
	msg := fmt.Sprintf("rollout/%s restarting: the instances of stable revision %d are replaced a few at a time", r.Name, st.StableRevision)
	if rev := InProgress(r); rev != 0 && !st.Abort {
		msg += fmt.Sprintf(", once revision %d is no longer rolling out", rev)
	}
	return msg, nil
}

// StartOver forgets the rollout's stable revision and whatever was under way, so that the
// next decision deploys the current template as a first revision: for when the stable
// revision runs nowhere any more and cannot come back (a workload deleted and made again
// without it). The revision numbers and their history stay.
func StartOver(r *v1alpha1.Rollout) {
	st := &r.Status
	st.StableRevision = 0
	st.CanaryRevision = 0
	st.PreviewRevision = 0
	st.ActiveRevision = 0
	st.Abort = false
	st.AbortedRevision = 0
	st.CanaryWeight = 0
	st.CanaryScale = nil
	st.HeaderRoutes = nil
	st.Promote = false
	st.PromoteFull = false
	st.PauseConditions = nil
	st.StepStartTime = nil
	st.LastProgressTime = nil
	st.ReadyTime = nil
	st.Analysis = nil
	st.CurrentStepIndex = nil
	st.Watch = nil
}

// AbortFor stops the revision under way as Abort does, with why as the reason, and reports
// whether it did (false when nothing is under way or it is aborted already).
func AbortFor(r *v1alpha1.Rollout, why string) bool {
	if InProgress(r) == 0 || r.Status.Abort {
		return false
	}
	_ = Abort(r)
	r.Status.Message = "aborted: " + why
	return true
}

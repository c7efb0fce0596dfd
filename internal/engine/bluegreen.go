package engine

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
)

// blueGreen runs the new revision as preview beside active, switches all traffic to it at
// once, and keeps the old active running for scaleDownDelaySeconds after the switch.
func (d *decision) blueGreen() {
	bg := d.spec.Strategy.BlueGreen
	rev, stable := d.newRev, d.st.StableRevision

	if d.st.ActiveRevision == rev {
		d.postPromotion(bg)
		return
	}

	failing, aborted := d.trafficFailing()
	if aborted {
		return
	}
	previewCount := d.replicas
	if bg.PreviewReplicaCount != nil {
		previewCount = *bg.PreviewReplicaCount
	}
	d.scale(stable, d.replicas)
	d.out.Routes.Weights = map[int64]int32{stable: 100}
	d.out.Routes.Preview = rev

	promoteAsked := d.st.Promote || d.st.PromoteFull
	desired := previewCount
	if promoteAsked {
		desired = max(desired, d.replicas)
	}
	d.scale(rev, desired)
	if d.checkHealth(rev, desired) {
		return
	}
	_, avail := d.counts(rev)
	if avail < previewCount {
		d.st.Message = fmt.Sprintf("waiting for preview revision %d: %d/%d instances available", rev, avail, previewCount)
		return
	}
	if d.st.ReadyTime == nil {
		now := metav1.NewTime(d.now)
		d.st.ReadyTime = &now
		d.event(EventNormal, "PreviewReady", fmt.Sprintf("preview revision %d is ready", rev))
	}
	if open, _ := d.gate(fmt.Sprintf("preview revision %d is analysed and switched to", rev), nil, 0, v1alpha1.WebhookPreRollout); !open {
		return // held, or aborted
	}

	if bg.PrePromotionAnalysis != nil && !d.st.PromoteFull {
		run := d.ensureRun(v1alpha1.AnalysisKindPrePromote, nil, *bg.PrePromotionAnalysis, stable)
		passed, aborted := d.judge(run)
		if aborted {
			return
		}
		if !passed {
			if run.Phase != v1alpha1.AnalysisInconclusive {
				d.st.Message = fmt.Sprintf("preview revision %d ready; waiting for pre-promotion analysis", rev)
			}
			return
		}
	}

	auto := bg.AutoPromotionEnabled == nil || *bg.AutoPromotionEnabled
	if bg.AutoPromotionSeconds > 0 {
		at := d.st.ReadyTime.Add(time.Duration(bg.AutoPromotionSeconds) * time.Second)
		if !d.now.Before(at) {
			auto = true
		} else {
			d.requeue(at)
		}
	}
	if d.spec.Paused {
		return
	}
	if !auto && !promoteAsked {
		d.pause(v1alpha1.PauseReasonBlueGreen)
		d.st.Message = fmt.Sprintf("preview revision %d is ready: `ramp promote` switches traffic to it", rev)
		return
	}
	d.unpause(v1alpha1.PauseReasonBlueGreen)
	d.scale(rev, d.replicas)
	if _, avail := d.counts(rev); avail < d.replicas {
		d.st.Message = fmt.Sprintf("scaling preview revision %d before the switch: %d/%d instances available", rev, avail, d.replicas)
		return
	}
	// The switch is a blue-green rollout's one traffic increase and its promotion.
	if open, _ := d.gate(fmt.Sprintf("the switch to revision %d", rev), nil, 100, v1alpha1.WebhookConfirmTrafficIncrease, v1alpha1.WebhookConfirmPromotion); !open {
		return // held, or aborted
	}
	if failing {
		d.st.Message = d.trafficWaitMessage(fmt.Sprintf("the switch to revision %d", rev))
		return
	}
	// Switch.
	d.st.ActiveRevision = rev
	d.st.PreviewRevision = 0
	d.st.Promote = false
	now := metav1.NewTime(d.now)
	d.st.StepStartTime = &now
	d.st.LastProgressTime = &now
	d.event(EventNormal, "Switched", fmt.Sprintf("traffic switched from revision %d to revision %d", stable, rev))
	d.postPromotion(bg)
}

// postPromotion runs after the switch: the new revision is active; it becomes stable once
// post-promotion analysis passes (at once without one). When it fails, traffic goes back.
func (d *decision) postPromotion(bg *v1alpha1.BlueGreenStrategy) {
	rev, old := d.newRev, d.st.StableRevision
	d.scale(rev, d.replicas)
	d.scale(old, d.replicas)
	d.out.Routes.Weights = map[int64]int32{rev: 100}
	if d.checkHealth(rev, d.replicas) {
		return
	}
	failing, aborted := d.trafficFailing()
	if aborted {
		return
	}
	if bg.PostPromotionAnalysis != nil && !d.st.PromoteFull {
		run := d.ensureRun(v1alpha1.AnalysisKindPostPromote, nil, *bg.PostPromotionAnalysis, old)
		passed, aborted := d.judge(run)
		if aborted || !passed {
			if !aborted && run.Phase != v1alpha1.AnalysisInconclusive {
				d.st.Message = fmt.Sprintf("revision %d is active; waiting for post-promotion analysis", rev)
			}
			return
		}
	}
	if failing {
		d.st.Message = d.trafficWaitMessage(fmt.Sprintf("promotion of revision %d", rev))
		return
	}
	d.promote(rev)
	d.st.ActiveRevision = rev
}

package engine

import (
	"slices"
	"strconv"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// RevisionNumber numbers the revision of a template whose hash is hash, in both modes: the
// stable, the current or the newest revision when its template has that hash (nothing new
// rolls out), else a new revision one above the highest known (isNew true; an older
// template again rolls out as a new revision). highest is the highest revision number
// recorded (0 when none); hashOf returns a recorded revision's template hash, "" when it
// has none.
func RevisionNumber(hash string, highest, current, stable int64, hashOf func(rev int64) string) (n int64, isNew bool) {
	highest = max(highest, current, stable)
	for _, rev := range []int64{stable, current, highest} {
		if rev != 0 && hash != "" && hashOf(rev) == hash {
			return rev, false
		}
	}
	return highest + 1, true
}

// PruneRevisions returns the recorded revisions to delete: the oldest of those not in use
// beyond spec.revisionHistoryLimit (spec.DefaultRevisionHistoryLimit when nil). In use are
// the current, stable, canary, active and preview revisions, those in status.revisions and
// those kept warm for the watch window.
func PruneRevisions(r *v1alpha1.Rollout, recorded []int64) []int64 {
	limit := int(spec.DefaultRevisionHistoryLimit)
	if r.Spec.RevisionHistoryLimit != nil {
		limit = int(*r.Spec.RevisionHistoryLimit)
	}
	st := &r.Status
	inUse := map[int64]bool{st.CurrentRevision: true, st.StableRevision: true, st.CanaryRevision: true, st.ActiveRevision: true, st.PreviewRevision: true}
	for _, rs := range st.Revisions {
		inUse[rs.Revision] = true
	}
	for k := range st.ScaleDownAt {
		if n, err := strconv.ParseInt(k, 10, 64); err == nil {
			inUse[n] = true
		}
	}
	var old []int64
	for _, n := range recorded {
		if !inUse[n] {
			old = append(old, n)
		}
	}
	slices.Sort(old)
	if extra := len(old) - max(limit, 0); extra > 0 {
		return old[:extra]
	}
	return nil
}

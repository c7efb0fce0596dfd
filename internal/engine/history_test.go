package engine

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
)

func TestRevisionNumber(t *testing.T) {
	hashes := map[int64]string{1: "a", 2: "b", 3: "c"}
	hashOf := func(n int64) string { return hashes[n] }
	tests := []struct {
		name                     string
		hash                     string
		highest, current, stable int64
		want                     int64
		wantNew                  bool
	}{
		{"first template", "a", 0, 0, 0, 1, true},
		{"same as the newest", "c", 3, 3, 1, 3, false},
		{"same as stable", "a", 3, 3, 1, 1, false},
		{"same as current", "b", 3, 2, 1, 2, false},
		{"an older template again", "b", 3, 3, 1, 4, true},
		{"a new template", "d", 3, 3, 1, 4, true},
		{"current above the highest recorded", "d", 3, 5, 1, 6, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, isNew := RevisionNumber(tt.hash, tt.highest, tt.current, tt.stable, hashOf)
			if got != tt.want || isNew != tt.wantNew {
				t.Errorf("RevisionNumber = %d, %v; want %d, %v", got, isNew, tt.want, tt.wantNew)
			}
		})
	}
}

func TestPruneRevisions(t *testing.T) {
	limit := func(n int32) *int32 { return &n }
	tests := []struct {
		name     string
		limit    *int32
		status   v1alpha1.RolloutStatus
		recorded []int64
		want     []int64
	}{
		{"under the default limit", nil, v1alpha1.RolloutStatus{CurrentRevision: 6, StableRevision: 6}, []int64{1, 2, 3, 4, 5, 6}, nil},
		{"beyond the default limit of 10", nil, v1alpha1.RolloutStatus{CurrentRevision: 12, StableRevision: 12}, []int64{12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, []int64{1}},
		{"keep 3 old ones", limit(3), v1alpha1.RolloutStatus{CurrentRevision: 6, StableRevision: 6}, []int64{1, 2, 3, 4, 5, 6}, []int64{1, 2}},
		{"revisions in use are kept and not counted", limit(1),
			v1alpha1.RolloutStatus{CurrentRevision: 6, StableRevision: 1, CanaryRevision: 6, ScaleDownAt: map[string]metav1.Time{"2": {}},
				Revisions: []v1alpha1.RevisionStatus{{Revision: 3}}},
			[]int64{1, 2, 3, 4, 5, 6}, []int64{4}},
		{"limit 0 keeps only those in use", limit(0), v1alpha1.RolloutStatus{CurrentRevision: 6, StableRevision: 5}, []int64{1, 2, 3, 4, 5, 6}, []int64{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{RevisionHistoryLimit: tt.limit}, Status: tt.status}
			if got := PruneRevisions(r, tt.recorded); !slices.Equal(got, tt.want) {
				t.Errorf("PruneRevisions = %v, want %v", got, tt.want)
			}
		})
	}
}

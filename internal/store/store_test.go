package store

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "ramp.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func rollout(name, cmd string) *v1alpha1.Rollout {
	return &v1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRollout},
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: v1alpha1.RolloutSpec{
			Template: tmpl(cmd),
			Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{}},
		},
		Status: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, CanaryWeight: 20, Message: "step 1"},
	}
}

func tmpl(cmd string) v1alpha1.Template {
	return v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{Command: cmd, Args: []string{"--port", "$(PORT)"}}}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestRolloutRoundTrip(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.GetRollout("chat-api"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRollout on empty store: err = %v, want ErrNotFound", err)
	}
	for _, name := range []string{"zeta", "chat-api"} {
		if err := s.PutRollout(rollout(name, "./"+name)); err != nil {
			t.Fatalf("PutRollout: %v", err)
		}
	}
	got, err := s.GetRollout("chat-api")
	if err != nil {
		t.Fatalf("GetRollout: %v", err)
	}
	if got.Spec.Template.Process.Command != "./chat-api" || got.Status.CanaryWeight != 20 || got.Status.Message != "step 1" {
		t.Errorf("GetRollout = %+v, spec or status lost", got)
	}
	list, err := s.ListRollouts()
	if err != nil {
		t.Fatalf("ListRollouts: %v", err)
	}
	if len(list) != 2 || list[0].Name != "chat-api" || list[1].Name != "zeta" {
		t.Errorf("ListRollouts = %v, want chat-api, zeta", names(list))
	}
	if err := s.PutRollout(&v1alpha1.Rollout{}); err == nil {
		t.Error("PutRollout without a name: no error")
	}

	if _, err := s.AppendEvent(control.Event{Rollout: "chat-api", Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddRevision("chat-api", tmpl("a"), "apply", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRollout("chat-api"); err != nil {
		t.Fatalf("DeleteRollout: %v", err)
	}
	if _, err := s.GetRollout("chat-api"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRollout after delete: err = %v, want ErrNotFound", err)
	}
	if revs, _ := s.Revisions("chat-api"); len(revs) != 0 {
		t.Errorf("revisions survived delete: %v", revs)
	}
	if es, _ := s.Events("chat-api", 0); len(es) != 0 {
		t.Errorf("events survived delete: %v", es)
	}
	if err := s.DeleteRollout("chat-api"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteRollout: err = %v, want ErrNotFound", err)
	}
}

func names(rs []v1alpha1.Rollout) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func TestAnalysisTemplateRoundTrip(t *testing.T) {
	s, _ := openTemp(t)
	at := &v1alpha1.AnalysisTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "error-rate"},
		Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{
			Name:             "errors",
			SuccessCondition: "result < 0.01",
			Provider:         v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "error-rate"}},
		}}},
	}
	if _, err := s.GetAnalysisTemplate("error-rate"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAnalysisTemplate on empty store: err = %v, want ErrNotFound", err)
	}
	if err := s.PutAnalysisTemplate(at); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAnalysisTemplate("error-rate")
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Metrics[0].SuccessCondition != "result < 0.01" || got.Spec.Metrics[0].Provider.Builtin.Metric != "error-rate" {
		t.Errorf("GetAnalysisTemplate = %+v", got)
	}
	list, err := s.ListAnalysisTemplates()
	if err != nil || len(list) != 1 {
		t.Errorf("ListAnalysisTemplates = %v, %v; want one", list, err)
	}
}

func TestRevisionNumberingAndDedupe(t *testing.T) {
	tests := []struct {
		cmd         string
		wantNumber  int64
		wantCreated bool
	}{
		{"v1", 1, true},
		{"v1", 1, false}, // same template as the newest
		{"v2", 2, true},
		{"v2", 2, false},
		{"v1", 3, true}, // same as an older one, not the newest: a new revision
		{"v3", 4, true},
	}
	s, _ := openTemp(t)
	for i, tt := range tests {
		rev, created, err := s.AddRevision("chat-api", tmpl(tt.cmd), "apply", t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatalf("step %d: AddRevision: %v", i, err)
		}
		if rev.Number != tt.wantNumber || created != tt.wantCreated {
			t.Errorf("step %d (%s): got revision %d created=%v, want %d created=%v", i, tt.cmd, rev.Number, created, tt.wantNumber, tt.wantCreated)
		}
		if rev.Template.Process.Command != tt.cmd || rev.Hash == "" || rev.Rollout != "chat-api" {
			t.Errorf("step %d: revision = %+v", i, rev)
		}
	}
	revs, err := s.Revisions("chat-api")
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range revs {
		got = append(got, r.Number)
	}
	if want := []int64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("Revisions = %v, want %v", got, want)
	}
	if revs[0].Hash != revs[2].Hash || revs[0].Hash == revs[1].Hash {
		t.Errorf("hashes: equal templates must hash equal, different ones differently")
	}
	if !revs[1].CreatedAt.Equal(t0.Add(2*time.Minute)) || revs[1].Cause != "apply" {
		t.Errorf("revision 2 = %+v", revs[1])
	}
	if r, err := s.GetRevision("chat-api", 2); err != nil || r.Template.Process.Command != "v2" {
		t.Errorf("GetRevision(2) = %+v, %v", r, err)
	}
	for _, n := range []int64{0, 9} {
		if _, err := s.GetRevision("chat-api", n); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetRevision(%d): err = %v, want ErrNotFound", n, err)
		}
	}
	if _, err := s.GetRevision("nope", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRevision of unknown rollout: err = %v, want ErrNotFound", err)
	}
	// Rollouts number their revisions independently.
	if rev, _, _ := s.AddRevision("other", tmpl("v9"), "apply", t0); rev.Number != 1 {
		t.Errorf("first revision of another rollout = %d, want 1", rev.Number)
	}
}

// Which revisions to prune is engine.PruneRevisions' rule; the store deletes them.
func TestDeleteRevisions(t *testing.T) {
	s, _ := openTemp(t)
	for i := range 6 {
		if _, _, err := s.AddRevision("r", tmpl(string(rune('a'+i))), "apply", t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRevisions("r", 1, 2, 6, 9); err != nil {
		t.Fatal(err)
	}
	revs, _ := s.Revisions("r")
	var got []int64
	for _, r := range revs {
		got = append(got, r.Number)
	}
	if want := []int64{3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("after delete: %v, want %v", got, want)
	}
	// Numbering continues after the highest ever recorded only while it is kept: here 5.
	if rev, _, _ := s.AddRevision("r", tmpl("new"), "apply", t0); rev.Number != 6 {
		t.Errorf("next revision = %d, want 6", rev.Number)
	}
	if err := s.DeleteRevisions("unknown", 1); err != nil {
		t.Errorf("delete from an unknown rollout: %v", err)
	}
}

// ApplyRollout numbers the template by engine.RevisionNumber: a template equal to the stable
// revision's goes back to it, without a new revision.
func TestApplyRolloutBackToStable(t *testing.T) {
	s, _ := openTemp(t)
	r := rollout("chat-api", "v1")
	if _, _, err := s.ApplyRollout(r, "apply", t0); err != nil {
		t.Fatal(err)
	}
	r.Status.StableRevision = 1
	r.Spec.Template = tmpl("v2")
	if rev, created, _ := s.ApplyRollout(r, "apply", t0); rev.Number != 2 || !created {
		t.Fatalf("v2: revision %d created=%v, want 2 true", rev.Number, created)
	}
	r.Spec.Template = tmpl("v1")
	rev, created, err := s.ApplyRollout(r, "apply", t0)
	if err != nil || rev.Number != 1 || created || r.Status.CurrentRevision != 1 {
		t.Fatalf("v1 again: revision %d created=%v current=%d err=%v, want stable revision 1, not created", rev.Number, created, r.Status.CurrentRevision, err)
	}
	got, _ := s.GetRollout("chat-api")
	if got.Status.CurrentRevision != 1 {
		t.Errorf("stored current revision = %d, want 1", got.Status.CurrentRevision)
	}
}

func TestEventsOrder(t *testing.T) {
	s, _ := openTemp(t)
	for i := range 12 { // more than 9 to catch lexical ordering of keys
		for _, r := range []string{"a", "b"} {
			e, err := s.AppendEvent(control.Event{Rollout: r, Time: t0, Type: "Normal", Reason: "Step", Message: string(rune('A' + i))})
			if err != nil {
				t.Fatal(err)
			}
			if e.Seq != uint64(i+1) {
				t.Fatalf("event %d of %s: seq %d, want %d", i, r, e.Seq, i+1)
			}
		}
	}
	all, err := s.Events("a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 12 {
		t.Fatalf("Events = %d, want 12", len(all))
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) || e.Message != string(rune('A'+i)) || e.Rollout != "a" {
			t.Errorf("event %d = %+v", i, e)
		}
	}
	after, _ := s.Events("a", 10)
	if len(after) != 2 || after[0].Seq != 11 {
		t.Errorf("Events after 10 = %+v, want seq 11, 12", after)
	}
	if none, err := s.Events("unknown", 0); err != nil || len(none) != 0 {
		t.Errorf("Events of unknown rollout = %v, %v", none, err)
	}
	if _, err := s.AppendEvent(control.Event{}); err == nil {
		t.Error("AppendEvent without rollout: no error")
	}
}

func TestReopenKeepsData(t *testing.T) {
	s, path := openTemp(t)
	if _, _, err := s.ApplyRollout(rollout("chat-api", "v1"), "apply", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(control.Event{Rollout: "chat-api", Reason: "Applied"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if _, err := s2.GetRollout("chat-api"); err != nil {
		t.Errorf("rollout lost on reopen: %v", err)
	}
	if revs, _ := s2.Revisions("chat-api"); len(revs) != 1 {
		t.Errorf("revisions after reopen = %v, want 1", revs)
	}
	// The event sequence continues.
	e, err := s2.AppendEvent(control.Event{Rollout: "chat-api", Reason: "Again"})
	if err != nil || e.Seq != 2 {
		t.Errorf("event after reopen: seq %d, err %v; want 2", e.Seq, err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	s2, err := Open(path)
	if err == nil {
		s2.Close()
		t.Fatal("second Open on a held database succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("err = %v, want ErrLocked", err)
	}
	if got := err.Error(); !strings.Contains(got, "state directory in use by another ramp") {
		t.Errorf("err = %q, want the clear message", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

func TestApplyRolloutIsAtomic(t *testing.T) {
	s, _ := openTemp(t)
	r1 := rollout("chat-api", "v1")
	rev, created, err := s.ApplyRollout(r1, "apply", t0)
	if err != nil || !created || rev.Number != 1 {
		t.Fatalf("ApplyRollout = %d, %v, %v", rev.Number, created, err)
	}
	if stored, _ := s.GetRollout("chat-api"); r1.Status.CurrentRevision != 1 || stored.Status.CurrentRevision != 1 {
		t.Fatalf("current revision %d, stored %d, want 1", r1.Status.CurrentRevision, stored.Status.CurrentRevision)
	}
	rev, created, _ = s.ApplyRollout(rollout("chat-api", "v1"), "apply", t0)
	if created || rev.Number != 1 {
		t.Errorf("re-apply of same template: revision %d created=%v, want 1 false", rev.Number, created)
	}

	// A failing transaction changes nothing.
	boom := errors.New("boom")
	err = s.Update(func(tx *Tx) error {
		if _, _, err := tx.AddRevision("chat-api", tmpl("v2"), "apply", t0); err != nil {
			return err
		}
		if err := tx.PutRollout(rollout("chat-api", "v2")); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(control.Event{Rollout: "chat-api"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update err = %v", err)
	}
	r, _ := s.GetRollout("chat-api")
	revs, _ := s.Revisions("chat-api")
	es, _ := s.Events("chat-api", 0)
	if r.Spec.Template.Process.Command != "v1" || len(revs) != 1 || len(es) != 0 {
		t.Errorf("rolled-back transaction left changes: command %s, %d revisions, %d events", r.Spec.Template.Process.Command, len(revs), len(es))
	}

	// A rollout without a name fails before anything is written.
	if _, _, err := s.ApplyRollout(&v1alpha1.Rollout{}, "apply", t0); err == nil {
		t.Error("ApplyRollout without a name: no error")
	}
}

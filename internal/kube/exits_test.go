package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
)

// podsOf lists the pods of the ReplicaSet named rs.
func (f *fixture) podsOf(rs string) []corev1.Pod {
	f.t.Helper()
	var pods corev1.PodList
	if err := f.c.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		f.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.Name == rs {
			out = append(out, p)
		}
	}
	return out
}

// restart gives pod p restarts in total, the last one ending as term says, as the kubelet
// reports a container that exited and was started again. created is the pod's creation.
func (f *fixture) restart(p corev1.Pod, created time.Time, restarts int32, term corev1.ContainerStateTerminated) {
	f.t.Helper()
	p.CreationTimestamp = metav1.NewTime(created)
	if err := f.c.Update(context.Background(), &p); err != nil {
		f.t.Fatal(err)
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: "sidecar", Ready: true},
		{Name: "chat-api", Ready: true, RestartCount: restarts, LastTerminationState: corev1.ContainerState{Terminated: &term}},
	}
	if err := f.c.Status().Update(context.Background(), &p); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) countEvents(reason string) (n int, last string) {
	for _, e := range f.seen {
		if strings.Contains(e, " "+reason+" ") {
			n, last = n+1, e
		}
	}
	return n, last
}

func TestCanaryPodRestartsAbortUnlessStableRestartsAsOften(t *testing.T) {
	oom := func(f *fixture) corev1.ContainerStateTerminated {
		return corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", Message: "out of memory\nkilled",
			StartedAt: metav1.NewTime(f.now.Add(-90 * time.Second)), FinishedAt: metav1.NewTime(f.now.Add(-time.Second))}
	}
	start := func(t *testing.T) (*fixture, string) {
		f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
		f.settle()
		f.setImage("chat-api:v2")
		f.settle()
		if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CanaryRevision != 2 {
			t.Fatalf("canary: phase %s canary %d: %s", ro.Status.Phase, ro.Status.CanaryRevision, ro.Status.Message)
		}
		return f, "chat-api-" + TemplateHash(&f.deployment().Spec.Template)
	}

	t.Run("a canary pod that restarts while stable's never do is aborted, with why", func(t *testing.T) {
		f, canaryRS := start(t)
		for _, p := range f.podsOf("chat-api-v1hash") {
			f.restart(p, f.now.Add(-time.Hour), 0, corev1.ContainerStateTerminated{})
		}
		pods := f.podsOf(canaryRS)
		if len(pods) != 1 {
			t.Fatalf("%d canary pods; want 1", len(pods))
		}
		f.restart(pods[0], f.now.Add(-time.Hour), 1, oom(f))
		f.reconcile()

		ro := f.rollout()
		if ro.Status.Phase != v1alpha1.PhaseDegraded || ro.Status.AbortedRevision != 2 {
			t.Fatalf("phase %s aborted %d: %s; want revision 2 aborted", ro.Status.Phase, ro.Status.AbortedRevision, ro.Status.Message)
		}
		want := "instance " + pods[0].Name + " container chat-api exited with status 137 (OOMKilled): out of memory | killed"
		if !strings.Contains(ro.Status.Message, want) {
			t.Errorf("status message %q lacks %q", ro.Status.Message, want)
		}
		n, ev := f.countEvents(reasonInstanceExited)
		if n != 1 || !strings.Contains(ev, "Warning") ||
			!strings.Contains(ev, "pod "+pods[0].Name+" of revision 2: container chat-api exited with status 137 (OOMKilled) after 1m29s (restart 1 of this pod); message: out of memory | killed") {
			t.Errorf("%d InstanceExited events, last %q; want one Warning with the pod, container, status and reason", n, ev)
		}
		f.wantEvent("RolloutAborted")
	})

	t.Run("a stable that restarts as often lets the canary go on", func(t *testing.T) {
		f, canaryRS := start(t)
		for _, p := range f.podsOf("chat-api-v1hash") {
			f.restart(p, f.now.Add(-time.Hour), 1, oom(f))
		}
		f.restart(f.podsOf(canaryRS)[0], f.now.Add(-time.Hour), 1, oom(f))
		f.reconcile()
		f.reconcile() // the same restarts again: no new event

		if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CanaryRevision != 2 {
			t.Fatalf("phase %s canary %d: %s; want the canary still paused at its step", ro.Status.Phase, ro.Status.CanaryRevision, ro.Status.Message)
		}
		// Stable's pods restarted while the controller ran too: each is reported once.
		if n, _ := f.countEvents(reasonInstanceExited); n != 4 {
			t.Errorf("%d InstanceExited events; want 4, one per pod that restarted:\n%s", n, strings.Join(f.seen, "\n"))
		}

		// When the canary pod restarts once more, then that restart alone gets an event.
		f.restart(f.podsOf(canaryRS)[0], f.now.Add(-time.Hour), 2, oom(f))
		f.reconcile()
		if n, ev := f.countEvents(reasonInstanceExited); n != 5 || !strings.Contains(ev, "(restart 2 of this pod)") {
			t.Errorf("%d InstanceExited events, last %q; want a 5th for restart 2", n, ev)
		}

		// When the Rollout is deleted, then its record of reported exits goes with it.
		if got := f.r.exits.rollouts(); got != 1 {
			t.Fatalf("exit record holds %d rollouts; want 1", got)
		}
		ro := f.rollout()
		if err := f.c.Delete(context.Background(), ro); err != nil {
			t.Fatal(err)
		}
		f.reconcile() // finalizes
		if _, err := f.r.Reconcile(context.Background(), reconcileRequest()); err != nil {
			t.Fatal(err)
		}
		if got := f.r.exits.rollouts(); got != 0 {
			t.Errorf("exit record holds %d rollouts after the Rollout was deleted; want 0", got)
		}
	})
}

func reconcileRequest() ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "chat-api"}}
}

func TestPodExitsReportsOnlyRestartsSinceTheControllerStarted(t *testing.T) {
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e := newPodExits(started)
	ro := types.NamespacedName{Namespace: ns, Name: "chat-api"}
	pod := func(uid string, restarts int32, finished time.Time) podInstance {
		return podInstance{pod: &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p-" + uid, UID: types.UID(uid)},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: restarts,
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", FinishedAt: metav1.NewTime(finished)}}}}},
		}}
	}
	// Given pods first seen with restarts, one from before the controller started and one after
	got := e.observe(ro, map[int64][]podInstance{1: {pod("old", 4, started.Add(-time.Minute)), pod("new", 1, started.Add(time.Second))}})
	if len(got) != 1 || !strings.Contains(got[0].Message, "pod p-new of revision 1: container app exited with status 2 (Error) (restart 1 of this pod)") {
		t.Fatalf("events %+v; want one for p-new only", got)
	}
	// When the old pod restarts again, then that restart is reported
	got = e.observe(ro, map[int64][]podInstance{1: {pod("old", 5, started.Add(time.Minute)), pod("new", 1, started.Add(time.Second))}})
	if len(got) != 1 || !strings.Contains(got[0].Message, "p-old") || !strings.Contains(got[0].Message, "restart 5") {
		t.Fatalf("events %+v; want one for restart 5 of p-old", got)
	}
	// The record keeps only the pods still there
	e.observe(ro, map[int64][]podInstance{1: {pod("new", 1, started.Add(time.Second))}})
	if n := len(e.reported[ro]); n != 1 {
		t.Errorf("record holds %d pods; want 1", n)
	}
}

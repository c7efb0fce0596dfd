package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/test/k8senv"
)

func jobTarget(n int32) analysis.Target {
	return analysis.Target{
		Rollout: "chat-api", Namespace: "jobs", Revision: 2, Baseline: 1, Role: "preview", Service: "chat-api-preview",
		Run: "prePromotion-2", Since: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), Measurement: n,
	}
}

func jobMetric(labels map[string]string) v1alpha1.Metric {
	return v1alpha1.Metric{Name: "smoke", Provider: v1alpha1.MetricProvider{Job: &v1alpha1.JobMetric{
		Image: "example.com/suite:v1", Args: []string{"--base-url=http://{{service}}.{{namespace}}"},
		Env: []v1alpha1.EnvVar{{Name: "SUITE", Value: "smoke"}}, Labels: labels,
		Annotations: map[string]string{"sidecar.istio.io/inject": "false"},
	}}}
}

func TestJobName(t *testing.T) {
	a := jobTarget(1)
	name := jobName(a, "smoke")
	if !strings.HasPrefix(name, "chat-api-prepromotion-2-smoke-1-") || len(name) > 63 {
		t.Errorf("name %q", name)
	}
	if again := jobName(jobTarget(1), "smoke"); again != name {
		t.Errorf("the same measurement is named %q, then %q", name, again)
	}
	b := jobTarget(2)
	retry := jobTarget(1)
	retry.Since = retry.Since.Add(time.Minute)
	for _, other := range []string{jobName(b, "smoke"), jobName(retry, "smoke"), jobName(a, "load")} {
		if other == name {
			t.Errorf("another measurement is also named %q", name)
		}
	}
	long := jobTarget(12)
	long.Rollout = strings.Repeat("very-long-rollout-name-", 5)
	long.Run = "Step_2"
	if n := jobName(long, "Error Rate"); len(n) > 63 || strings.Contains(n, "--12") || !strings.HasSuffix(n[:len(n)-9], "-12") {
		t.Errorf("long name %q (%d characters)", n, len(n))
	}
}

func TestJobFor(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: "jobs", UID: "ro-uid"}}
	m := jobMetric(map[string]string{"team": "chat"})
	m.Provider.Job.Timeout = &intstr.IntOrString{Type: intstr.String, StrVal: "90s"}
	j, err := jobFor(ro, &m, jobTarget(1), 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !ownedBy(j, "ro-uid") || j.Labels[LabelRollout] != "chat-api" || j.Namespace != "jobs" {
		t.Errorf("job meta %+v", j.ObjectMeta)
	}
	if *j.Spec.ActiveDeadlineSeconds != 2 || *j.Spec.BackoffLimit != 0 {
		t.Errorf("deadline %d backoff %d; want 2 (1.5s rounded up), 0", *j.Spec.ActiveDeadlineSeconds, *j.Spec.BackoffLimit)
	}
	pod := j.Spec.Template
	if pod.Labels["team"] != "chat" || pod.Annotations["sidecar.istio.io/inject"] != "false" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("pod template %+v", pod)
	}
	c := pod.Spec.Containers[0]
	if c.Image != "example.com/suite:v1" || !slices.Equal(c.Args, []string{"--base-url=http://chat-api-preview.jobs"}) {
		t.Errorf("container image %s args %v", c.Image, c.Args)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	want := map[string]string{
		"RAMP_ROLLOUT": "chat-api", "RAMP_NAMESPACE": "jobs", "RAMP_REVISION": "2", "RAMP_BASELINE_REVISION": "1",
		"RAMP_ROLE": "preview", "RAMP_SERVICE": "chat-api-preview", "RAMP_ANALYSIS": "prePromotion-2", "SUITE": "smoke",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s=%q; want %q", k, env[k], v)
		}
	}
}

// TestJobProviderOnAPIServer runs analysis Jobs on a real control plane, whose kwok nodes
// complete Job pods, fail those labelled kwok.ramp.dev/fail and keep those labelled
// kwok.ramp.dev/keep-running running. It is skipped when the control-plane binaries are not
// built (`make k8s-bins`).
func TestJobProviderOnAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	if _, err := k8senv.BinDir(); err != nil {
		t.Skipf("no control plane: %v", err)
	}
	env := k8senv.Start(t)
	ctx := context.Background()
	if _, err := env.Apply(ctx, []byte(rolloutCRD)); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "jobs"}}); err != nil {
		t.Fatal(err)
	}
	stored := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ramp.dev/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "chat-api", "namespace": "jobs"},
		"spec":     map[string]any{},
	}}
	if err := c.Create(ctx, stored); err != nil {
		t.Fatal(err)
	}
	p := NewJobProvider(c, JobProviderOptions{Poll: 200 * time.Millisecond, KeepFinished: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	measure := func(t *testing.T, m v1alpha1.Metric, n int32) analysis.Value {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		v, err := p.Measure(ctx, m, jobTarget(n))
		if err != nil {
			t.Fatalf("measurement %d: %v", n, err)
		}
		return v
	}
	jobs := func(t *testing.T) map[string]*batchv1.Job {
		t.Helper()
		var l batchv1.JobList
		if err := c.List(ctx, &l, client.InNamespace("jobs")); err != nil {
			t.Fatal(err)
		}
		out := map[string]*batchv1.Job{}
		for i := range l.Items {
			if l.Items[i].DeletionTimestamp == nil {
				out[l.Items[i].Name] = &l.Items[i]
			}
		}
		return out
	}
	gone := func(t *testing.T, name string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for jobs(t)[name] != nil {
			if time.Now().After(deadline) {
				t.Fatalf("job %s still there after 30s", name)
			}
			time.Sleep(100 * time.Millisecond) // polling the API for a state, with a deadline
		}
	}

	first := jobName(jobTarget(1), "smoke")
	t.Run("a Job that completes is the result 1", func(t *testing.T) {
		v := measure(t, jobMetric(nil), 1)
		if v.Result != 1 || !strings.Contains(v.Text, "complete") {
			t.Errorf("value %+v; want 1, complete", v)
		}
		j := jobs(t)[first]
		if j == nil {
			t.Fatalf("no job %s among %v", first, keys(jobs(t)))
		}
		if ref := metav1.GetControllerOf(j); ref == nil || ref.UID != stored.GetUID() {
			t.Errorf("job controlled by %v; want the rollout", ref)
		}
	})

	t.Run("a restarted controller finds its Job", func(t *testing.T) {
		before := len(jobs(t))
		if v := measure(t, jobMetric(nil), 1); v.Result != 1 {
			t.Errorf("value %+v", v)
		}
		if after := len(jobs(t)); after != before {
			t.Errorf("%d jobs, then %d: a second Job was made", before, after)
		}
	})

	t.Run("a Job that fails is the result 0, with its reason", func(t *testing.T) {
		v := measure(t, jobMetric(map[string]string{"kwok.ramp.dev/fail": "true"}), 2)
		if v.Result != 0 || !strings.Contains(v.Text, "failed: BackoffLimitExceeded") || !strings.Contains(v.Text, "exit code 1") {
			t.Errorf("value %+v; want 0, BackoffLimitExceeded, exit code 1", v)
		}
	})

	t.Run("a Job past its timeout is the result 0", func(t *testing.T) {
		m := jobMetric(map[string]string{"kwok.ramp.dev/keep-running": "true"})
		m.Provider.Job.Timeout = &intstr.IntOrString{Type: intstr.Int, IntVal: 1}
		v := measure(t, m, 3)
		if v.Result != 0 || !strings.Contains(v.Text, "DeadlineExceeded") {
			t.Errorf("value %+v; want 0, DeadlineExceeded", v)
		}
		// Only the newest finished Jobs stay (KeepFinished 2): the first one went.
		gone(t, first)
	})

	running := func(t *testing.T, n int32, stop error) (string, <-chan error) {
		t.Helper()
		name := jobName(jobTarget(n), "smoke")
		mctx, cancel := context.WithCancelCause(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := p.Measure(mctx, jobMetric(map[string]string{"kwok.ramp.dev/keep-running": "true"}), jobTarget(n))
			done <- err
		}()
		deadline := time.Now().Add(30 * time.Second)
		for jobs(t)[name] == nil {
			if time.Now().After(deadline) {
				t.Fatalf("no job %s after 30s", name)
			}
			time.Sleep(50 * time.Millisecond) // polling the API for a state, with a deadline
		}
		cancel(stop)
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("measure returned %v; want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("measure did not return within 10s of the cancellation")
		}
		return name, done
	}

	t.Run("a dropped run deletes its running Job", func(t *testing.T) {
		name, _ := running(t, 4, analysis.ErrDropped)
		gone(t, name)
	})

	t.Run("a stopping controller leaves its running Job", func(t *testing.T) {
		name, _ := running(t, 5, errors.New("controller stopping"))
		j := &batchv1.Job{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "jobs", Name: name}, j); err != nil || j.DeletionTimestamp != nil {
			t.Fatalf("job %s: %v, deleting %v", name, err, j.DeletionTimestamp)
		}
		// Cleanup for the next test run is the control plane's removal.
	})

	t.Run("a Job deleted by someone else is an error", func(t *testing.T) {
		name := jobName(jobTarget(6), "smoke")
		errc := make(chan error, 1)
		go func() {
			_, err := p.Measure(ctx, jobMetric(map[string]string{"kwok.ramp.dev/keep-running": "true"}), jobTarget(6))
			errc <- err
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := c.Delete(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: name}}, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if err == nil {
				break
			}
			if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
				t.Fatalf("delete job %s: %v", name, err)
			}
			time.Sleep(50 * time.Millisecond) // polling the API for a state, with a deadline
		}
		select {
		case err := <-errc:
			if err == nil || !strings.Contains(err.Error(), "deleted before it finished") {
				t.Errorf("measure returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal(fmt.Sprintf("measure did not notice the deletion of %s within 30s", name))
		}
	})

	t.Run("a full-form Job runs its pod template as written", func(t *testing.T) {
		for _, o := range []client.Object{
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: "suite-runner"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: "suite-secrets"}, StringData: map[string]string{"api-key": "k"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: "suite-env"}, StringData: map[string]string{"TOKEN": "t"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: "suite-certs"}, StringData: map[string]string{"ca.crt": "c"}},
		} {
			if err := c.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		v := measure(t, loadFullJobMetric(t), 7)
		if v.Result != 1 || !strings.Contains(v.Text, "complete") {
			t.Errorf("value %+v; want 1, complete", v)
		}
		name := jobName(jobTarget(7), "smoke")
		j := jobs(t)[name]
		if j == nil {
			t.Fatalf("no job %s among %v", name, keys(jobs(t)))
		}
		checkFullJob(t, j)
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace("jobs"), client.MatchingLabels{labelJobName: name}); err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 {
			t.Fatalf("no pod of job %s", name)
		}
		pod := pods.Items[0]
		if pod.Spec.ServiceAccountName != "suite-runner" || len(pod.Spec.Containers) != 1 || len(pod.Spec.Containers[0].EnvFrom) != 1 {
			t.Errorf("pod serviceAccountName %q containers %+v", pod.Spec.ServiceAccountName, pod.Spec.Containers)
		}
	})
}

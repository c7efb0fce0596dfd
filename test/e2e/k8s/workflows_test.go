package k8s

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// testTeamWorkflows changes chat-api the ways a team does — a Terraform-style patch (unpause
// and a new image in one), `kubectl set image`, `kubectl apply` of a changed manifest, and
// what `kubectl rollout restart` writes — through a canary on Istio, a blue-green and a
// rolling update, checking after every step the pods per revision, that no template has two
// ReplicaSets, the routing object's weights and the status' counts and weights against the
// real ones; and a watcher checks all along that no revision runs more pods than it may. It
// also deletes and re-creates the Deployment, deletes the Rollout mid-canary and puts a
// second Rollout on the Deployment.
func testTeamWorkflows(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	env.ApplyFiles(t, filepath.Join(repoRoot, "test/k8s/crds"), filepath.Join(repoRoot, "internal/kube/testdata/crds"))
	startController(t, cfg, "workflows", metrics, kube.Options{})

	for _, change := range []string{"terraform", "set-image", "apply", "restart"} {
		for _, strategy := range []string{"canary", "bluegreen", "rolling"} {
			t.Run(change+"/"+strategy, func(t *testing.T) {
				t.Parallel()
				workflow(t, env, change, strategy)
			})
		}
	}
	for _, tc := range []struct {
		router string
		delay  time.Duration
	}{{"istio", time.Second}, {"istio", 3 * time.Second}, {"service", 2 * time.Second}} {
		t.Run(fmt.Sprintf("promote --full %s after a terraform patch/%s", tc.delay, tc.router), func(t *testing.T) {
			t.Parallel()
			promoteRightAfterPatch(t, env, tc.router, tc.delay)
		})
	}
	t.Run("deployment deleted and made again mid-canary", func(t *testing.T) {
		t.Parallel()
		deploymentDeletedMidCanary(t, env)
	})
	t.Run("rollout deleted mid-canary", func(t *testing.T) {
		t.Parallel()
		rolloutDeletedMidCanary(t, env)
	})
	t.Run("second rollout refused", func(t *testing.T) {
		t.Parallel()
		secondRolloutRefused(t, env)
	})
}

// istioCanary is a canary through the Istio VirtualService chat-api (route "primary"), with
// the given steps.
func istioCanary(steps ...v1alpha1.CanaryStep) v1alpha1.Strategy {
	return v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary", Steps: steps,
		TrafficRouting: &v1alpha1.TrafficRouting{
			Istio:         &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api", Routes: []string{"primary"}}},
			ManagedRoutes: []v1alpha1.ManagedRoute{{Name: testersRoute.Name}},
		},
	}}
}

// newIstioScenario is a scenario with the stable and canary Services and the team's
// VirtualService sending everything to stable.
func newIstioScenario(t *testing.T, env *k8senv.Env, ns string) *scenario {
	s := newScenario(t, env, ns, "chat-api-stable", "chat-api-canary")
	vs := object(virtualServiceGVK, ns, "chat-api", map[string]any{"hosts": []any{"chat-api"}, "http": []any{map[string]any{
		"name":  "primary",
		"route": []any{map[string]any{"destination": map[string]any{"host": "chat-api-stable"}, "weight": int64(100)}},
	}}})
	if err := s.c.Create(context.Background(), vs); err != nil {
		t.Fatal(err)
	}
	return s
}

// virtualService reads the canary's weight on route primary and the names of the other http
// routes (ramp's header routes).
func (s *scenario) virtualService(ctx context.Context) (weight int64, others []string, err error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(virtualServiceGVK)
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "chat-api"}, u); err != nil {
		return 0, nil, err
	}
	http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	for _, h := range http {
		hm := h.(map[string]any)
		if hm["name"] == "primary" {
			dests, _, _ := unstructured.NestedSlice(hm, "route")
			weight = weightOf(dests, "chat-api-canary", "destination", "host")
			continue
		}
		others = append(others, fmt.Sprint(hm["name"]))
	}
	return weight, others, nil
}

// observed is what runs in a namespace, by pod template (kube.TemplateHash): the pods that are
// not terminating, the ready ones, and the ReplicaSets not being deleted.
type observed struct {
	pods, ready map[string]int32
	sets        map[string][]string
	// byLabel maps a pod-template-hash label to its template.
	byLabel map[string]string
}

func (s *scenario) observe(ctx context.Context) (*observed, error) {
	var sets appsv1.ReplicaSetList
	if err := s.c.List(ctx, &sets, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	var pods corev1.PodList
	if err := s.c.List(ctx, &pods, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	o := &observed{pods: map[string]int32{}, ready: map[string]int32{}, sets: map[string][]string{}, byLabel: map[string]string{}}
	tmpl := map[string]string{}
	for i := range sets.Items {
		rs := &sets.Items[i]
		h := kube.TemplateHash(&rs.Spec.Template)
		tmpl[rs.Name] = h
		o.byLabel[rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]] = h
		if rs.DeletionTimestamp == nil {
			o.sets[h] = append(o.sets[h], rs.Name)
		}
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		ref := metav1.GetControllerOf(p)
		if p.DeletionTimestamp != nil || ref == nil || tmpl[ref.Name] == "" {
			continue
		}
		h := tmpl[ref.Name]
		o.pods[h]++
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				o.ready[h]++
			}
		}
	}
	return o, nil
}

// templateOf returns the TemplateHash of the Deployment's pod template now.
func (s *scenario) templateOf(ctx context.Context) (string, error) {
	d, err := s.deployment(ctx)
	if err != nil {
		return "", err
	}
	return kube.TemplateHash(&d.Spec.Template), nil
}

// watchPods checks every 200 ms until the test ends that no template runs more than limit
// pods and all of them together no more than total, and fails the test with the first breach.
func (s *scenario) watchPods(limit, total int32) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var breach string
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			o, err := s.observe(ctx)
			if err != nil {
				continue
			}
			var sum int32
			for h, n := range o.pods {
				sum += n
				if n > limit && breach == "" {
					breach = fmt.Sprintf("template %s ran %d pods (at most %d); pods by template %v, replicasets %v", h, n, limit, o.pods, o.sets)
				}
			}
			if sum > total && breach == "" {
				breach = fmt.Sprintf("%d pods ran (at most %d); pods by template %v, replicasets %v", sum, total, o.pods, o.sets)
			}
		}
	}()
	s.t.Cleanup(func() {
		cancel()
		wg.Wait()
		if breach != "" {
			s.t.Errorf("%s: %s", s.ns, breach)
		}
	})
}

// expect is what a settled step runs: pods per template (templates not listed run none).
type expect map[string]int32

// settled waits until the namespace runs exactly want, every template has one ReplicaSet at
// most, the rollout is in phase at stable revision stable, and its status counts the ready
// pods of each revision as they are; then check runs on the rollout (nil for none).
func (s *scenario) settled(what string, phase v1alpha1.RolloutPhase, stable int64, want expect, check func(ctx context.Context, ro *v1alpha1.Rollout, o *observed) error) {
	s.t.Helper()
	eventually(s.t, 90*time.Second, s.ns+": "+what, func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if ro.Status.Phase != phase || ro.Status.StableRevision != stable {
			return fmt.Errorf("phase %s stable %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
		}
		o, err := s.observe(ctx)
		if err != nil {
			return err
		}
		for h, names := range o.sets {
			if len(names) > 1 {
				return fmt.Errorf("template %s has %d replicasets: %v", h, len(names), names)
			}
		}
		for h, n := range o.pods {
			if n != want[h] {
				return fmt.Errorf("pods by template %v; want %v", o.pods, want)
			}
		}
		for h, n := range want {
			if o.pods[h] != n || o.ready[h] != n {
				return fmt.Errorf("pods by template %v, ready %v; want %v", o.pods, o.ready, want)
			}
		}
		for _, rs := range ro.Status.Revisions {
			h := o.byLabel[rs.PodTemplateHash]
			if rs.Ready != o.ready[h] {
				return fmt.Errorf("status says revision %d (%s) has %d ready pods; it has %d (pods %v)", rs.Revision, h, rs.Ready, o.ready[h], o.ready)
			}
		}
		if check != nil {
			return check(ctx, ro, o)
		}
		return nil
	})
}

// istioWeight checks that the VirtualService and the status both give the canary weight w,
// and that no header route is left when w is 0.
func (s *scenario) istioWeight(w int32) func(ctx context.Context, ro *v1alpha1.Rollout, o *observed) error {
	return func(ctx context.Context, ro *v1alpha1.Rollout, o *observed) error {
		got, others, err := s.virtualService(ctx)
		if err != nil {
			return err
		}
		if got != int64(w) || ro.Status.CanaryWeight != w {
			return fmt.Errorf("virtualservice canary weight %d, status canary weight %d; want %d", got, ro.Status.CanaryWeight, w)
		}
		for _, rs := range ro.Status.Revisions {
			if rs.Revision == ro.Status.CanaryRevision && rs.Weight != w {
				return fmt.Errorf("status gives revision %d weight %d; want %d", rs.Revision, rs.Weight, w)
			}
		}
		if w == 0 && len(others) > 0 {
			return fmt.Errorf("virtualservice keeps routes %v with no canary", others)
		}
		return nil
	}
}

// manifest is the team's chat-api Deployment as a file, with image.
func manifest(ns, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: chat-api
  namespace: %s
spec:
  replicas: 3
  selector:
    matchLabels: {app: chat-api}
  template:
    metadata:
      labels: {app: chat-api}
    spec:
      containers:
      - name: chat-api
        image: %s
        ports:
        - containerPort: 8080
`, ns, image)
}

func (s *scenario) kubectl(args ...string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := s.env.Kubectl(ctx, append([]string{"-n", s.ns}, args...)...); err != nil {
		s.t.Fatalf("%v\n%s", err, out)
	}
}

func (s *scenario) applyManifest(image string) {
	s.t.Helper()
	f := filepath.Join(s.t.TempDir(), "chat-api.yaml")
	if err := os.WriteFile(f, []byte(manifest(s.ns, image)), 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.kubectl("apply", "-f", f)
}

// change makes the team's change to the Deployment's pod template the way named.
func (s *scenario) change(how string) {
	s.t.Helper()
	switch how {
	case "terraform":
		s.kubectl("patch", "deployment", "chat-api", "--type=merge", "-p",
			`{"spec":{"paused":false,"template":{"spec":{"containers":[{"name":"chat-api","image":"`+v2+`","ports":[{"containerPort":8080}]}]}}}}`)
	case "set-image":
		s.kubectl("set", "image", "deployment/chat-api", "chat-api="+v2)
	case "apply":
		s.applyManifest(v2)
	case "restart":
		// What `kubectl rollout restart` writes.
		s.kubectl("patch", "deployment", "chat-api", "-p",
			`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"`+time.Now().Format(time.RFC3339)+`"}}}}}`)
	default:
		s.t.Fatalf("unknown change %q", how)
	}
}

func (s *scenario) promote(full bool) {
	s.t.Helper()
	args := []string{"--kubeconfig", s.env.Kubeconfig, "-n", s.ns, "promote", "chat-api"}
	if full {
		args = append(args, "--full")
	}
	if out, err := ramp(s.t, true, args...); err != nil {
		s.t.Fatalf("kubectl ramp promote: %v\n%s", err, out)
	}
}

func workflow(t *testing.T, env *k8senv.Env, change, strategy string) {
	ns := "wf-" + change + "-" + strategy
	var s *scenario
	var ro v1alpha1.Strategy
	switch strategy {
	case "canary":
		s = newIstioScenario(t, env, ns)
		ro = istioCanary(v1alpha1.CanaryStep{SetWeight: ptr(int32(34))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
			v1alpha1.CanaryStep{SetWeight: ptr(int32(67))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}})
		s.watchPods(3, 6)
	case "bluegreen":
		s = newScenario(t, env, ns, "chat-api-active", "chat-api-preview")
		ro = v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{ActiveService: "chat-api-active", PreviewService: "chat-api-preview",
			AutoPromotionEnabled: ptr(false), ScaleDownDelaySeconds: ptr(int32(0))}}
		s.watchPods(3, 6)
	case "rolling":
		s = newScenario(t, env, ns)
		ro = v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{
			MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0)),
			Pause: &v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1)},
		}}
		s.watchPods(3, 4) // maxSurge 1
	}
	if change == "apply" {
		s.applyManifest(v1) // the team manages the Deployment with kubectl apply
	}
	ctx := context.Background()
	s.createRollout(ro)
	old, err := s.templateOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var steady func(ctx context.Context, ro *v1alpha1.Rollout, o *observed) error
	if strategy == "canary" {
		steady = s.istioWeight(0)
	}
	s.settled("revision 1 stable", v1alpha1.PhaseHealthy, 1, expect{old: 3}, steady)

	s.change(change)
	var cur string
	eventually(t, 30*time.Second, "the template changed", func(ctx context.Context) error {
		cur, err = s.templateOf(ctx)
		if err == nil && cur == old {
			err = errors.New("template unchanged")
		}
		return err
	})

	switch strategy {
	case "canary":
		s.settled("canary at 34%", v1alpha1.PhasePaused, 1, expect{old: 3, cur: 2}, s.istioWeight(34))
		s.promote(false)
		s.settled("canary at 67%", v1alpha1.PhasePaused, 1, expect{old: 3, cur: 3}, s.istioWeight(67))
		s.promote(false)
		s.settled("revision 2 stable", v1alpha1.PhaseHealthy, 2, expect{cur: 3}, s.istioWeight(0))
		if err := hasEvent(ctx, &kube.Commands{Client: s.c, Namespace: s.ns}, "HandedOver", ""); err != nil {
			t.Error(err)
		}
	case "bluegreen":
		s.settled("preview ready", v1alpha1.PhasePaused, 1, expect{old: 3, cur: 3}, nil)
		s.waitSelects("chat-api-active", s.imageOf(old))
		s.promote(false)
		s.settled("revision 2 active", v1alpha1.PhaseHealthy, 2, expect{cur: 3}, nil)
	case "rolling":
		// Held at the pause point: the Deployment paused with 1 new pod (2 when the
		// controller took one more step before ramp paused it). The gate is a race with the
		// Deployment controller, which rolls on as soon as new pods are ready: when ramp is
		// late (a busy controller; kwok pods are ready at once) it holds further on, and the
		// status must then say so rather than name the pause point.
		eventually(t, 60*time.Second, ns+": the update holds", func(ctx context.Context) error {
			ro, err := s.rollout(ctx)
			if err != nil {
				return err
			}
			d, err := s.deployment(ctx)
			if err != nil {
				return err
			}
			o, err := s.observe(ctx)
			if err != nil {
				return err
			}
			if ro.Status.Phase != v1alpha1.PhasePaused || !d.Spec.Paused || o.pods[cur] < 1 || o.ready[cur] != o.pods[cur] || o.pods[old]+o.pods[cur] > 4 {
				return fmt.Errorf("phase %s, deployment paused %v, pods by template %v (old %s, new %s): %s", ro.Status.Phase, d.Spec.Paused, o.pods, old, cur, ro.Status.Message)
			}
			for _, rs := range ro.Status.Revisions {
				if h := o.byLabel[rs.PodTemplateHash]; rs.Ready != o.ready[h] {
					return fmt.Errorf("status says revision %d has %d ready pods; it has %d", rs.Revision, rs.Ready, o.ready[h])
				}
			}
			if want := fmt.Sprintf("holds at %d/3", o.ready[cur]); !strings.Contains(ro.Status.Message, want) {
				return fmt.Errorf("status message %q does not say %q", ro.Status.Message, want)
			}
			if o.pods[cur] > 2 {
				t.Logf("%s: the Deployment controller went to %d/3 before ramp held it", ns, o.pods[cur])
				if !strings.Contains(ro.Status.Message, "past its pause point of 1") {
					return fmt.Errorf("held at %d/3 new pods, past the pause point, and the status does not say so: %q", o.pods[cur], ro.Status.Message)
				}
				return hasEvent(ctx, &kube.Commands{Client: s.c, Namespace: s.ns}, "RollingUpdatePastPausePoint", "")
			}
			if o.pods[old] < 2 {
				return fmt.Errorf("pods by template %v", o.pods)
			}
			return nil
		})
		s.promote(false)
		s.settled("revision 2 stable", v1alpha1.PhaseHealthy, 2, expect{cur: 3}, nil)
	}
	if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
		t.Errorf("kubectl rollout status: %v\n%s", err, out)
	}
}

// imageOf is the image every pod of template h runs.
func (s *scenario) imageOf(h string) string {
	var sets appsv1.ReplicaSetList
	if err := s.c.List(context.Background(), &sets, client.InNamespace(s.ns)); err != nil {
		s.t.Fatal(err)
	}
	for _, rs := range sets.Items {
		if kube.TemplateHash(&rs.Spec.Template) == h {
			return rs.Spec.Template.Spec.Containers[0].Image
		}
	}
	s.t.Fatalf("no replicaset of template %s", h)
	return ""
}

// promoteRightAfterPatch is issue 10's first finding: a Terraform-style patch, then
// `kubectl ramp promote --full` within a few seconds, as a pipeline does. It must end with 3
// pods in one ReplicaSet that the Deployment owns, handed over.
func promoteRightAfterPatch(t *testing.T, env *k8senv.Env, router string, delay time.Duration) {
	ns := fmt.Sprintf("promote-%s-%ds", router, int(delay.Seconds()))
	var s *scenario
	steps := []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}, {Pause: &v1alpha1.RolloutPause{}}, {SetWeight: ptr(int32(50))}, {Pause: &v1alpha1.RolloutPause{}}}
	if router == "istio" {
		s = newIstioScenario(t, env, ns)
		s.createRollout(istioCanary(steps...))
	} else {
		s = newScenario(t, env, ns, "chat-api-stable", "chat-api-canary")
		s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{StableService: "chat-api-stable", CanaryService: "chat-api-canary", Steps: steps}})
	}
	s.watchPods(3, 6)
	ctx := context.Background()
	old, err := s.templateOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.settled("revision 1 stable", v1alpha1.PhaseHealthy, 1, expect{old: 3}, nil)

	s.change("terraform")
	time.Sleep(delay) // the pipeline's next step, not a wait for a state
	// A promote before the controller has seen the change is refused ("no revision is rolling
	// out"); the pipeline tries again.
	eventually(t, 30*time.Second, "kubectl ramp promote --full", func(ctx context.Context) error {
		out, err := ramp(t, true, "--kubeconfig", s.env.Kubeconfig, "-n", s.ns, "promote", "chat-api", "--full")
		if err != nil && !strings.Contains(out, "no revision is rolling out") {
			return final{fmt.Errorf("%w: %s", err, out)}
		}
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	cur, err := s.templateOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var check func(ctx context.Context, ro *v1alpha1.Rollout, o *observed) error
	if router == "istio" {
		check = s.istioWeight(0)
	}
	s.settled("revision 2 stable", v1alpha1.PhaseHealthy, 2, expect{cur: 3}, check)
	eventually(t, 30*time.Second, "the Deployment owns the one ReplicaSet of revision 2, handed over", func(ctx context.Context) error {
		var sets appsv1.ReplicaSetList
		if err := s.c.List(ctx, &sets, client.InNamespace(s.ns)); err != nil {
			return err
		}
		for _, rs := range sets.Items {
			if ref := metav1.GetControllerOf(&rs); *rs.Spec.Replicas > 0 && (ref == nil || ref.Kind != "Deployment") {
				return fmt.Errorf("replicaset %s runs %d pods, owned by %v", rs.Name, *rs.Spec.Replicas, ref)
			}
		}
		// Handed over by ramp; or, when the controller was late, rolled by the Deployment
		// controller itself, which the rollout says.
		cmds := &kube.Commands{Client: s.c, Namespace: s.ns}
		if err := hasEvent(ctx, cmds, "HandedOver", ""); err != nil {
			if hasEvent(ctx, cmds, "DeploymentRolledOnItsOwn", "") != nil {
				return err
			}
			t.Logf("%s: the Deployment controller rolled revision 2 by itself before ramp paused it", s.ns)
		}
		return nil
	})
	// The watcher (3 pods per template at most) checks until the end that the paused
	// Deployment does not scale a second ReplicaSet of revision 2 up later.
	if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
		t.Errorf("kubectl rollout status: %v\n%s", err, out)
	}
}

// deploymentDeletedMidCanary deletes the Deployment while the canary holds at 34%: the
// rollout aborts and says why, the VirtualService sends nothing to the canary; made again
// with the new image, the Deployment deploys it by itself and ramp starts over with it.
func deploymentDeletedMidCanary(t *testing.T, env *k8senv.Env) {
	s := newIstioScenario(t, env, "deploy-deleted")
	s.createRollout(istioCanary(v1alpha1.CanaryStep{SetWeight: ptr(int32(34))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	s.watchPods(3, 6)
	ctx := context.Background()
	old, err := s.templateOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.settled("revision 1 stable", v1alpha1.PhaseHealthy, 1, expect{old: 3}, nil)
	s.change("set-image")
	cur, err := s.templateOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.settled("canary at 34%", v1alpha1.PhasePaused, 1, expect{old: 3, cur: 2}, s.istioWeight(34))

	s.kubectl("delete", "deployment", "chat-api", "--wait=false")
	s.settled("aborted: the deployment is gone", v1alpha1.PhaseDegraded, 1, expect{}, func(ctx context.Context, ro *v1alpha1.Rollout, o *observed) error {
		if !strings.Contains(ro.Status.Message, "deployment chat-api not found") || !strings.Contains(ro.Status.Message, "deleted") {
			return fmt.Errorf("message %q does not say the deployment was deleted", ro.Status.Message)
		}
		return s.istioWeight(0)(ctx, ro, o)
	})

	s.applyManifest(v2)
	s.settled("revision 2 stable in the new Deployment", v1alpha1.PhaseHealthy, 2, expect{cur: 3}, s.istioWeight(0))
	if err := hasEvent(ctx, &kube.Commands{Client: s.c, Namespace: s.ns}, "DeploymentRecreated", ""); err != nil {
		t.Error(err)
	}
}

// rolloutDeletedMidCanary deletes the Rollout while the canary takes 10% and a header route:
// the canary is not promoted; the Deployment runs the stable template again, resumed, and the
// VirtualService sends everything to stable with no header route left.
func rolloutDeletedMidCanary(t *testing.T, env *k8senv.Env) {
	s := newIstioScenario(t, env, "rollout-deleted")
	s.createRollout(istioCanary(v1alpha1.CanaryStep{SetHeaderRoute: &testersRoute}, v1alpha1.CanaryStep{SetWeight: ptr(int32(10))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	s.watchPods(3, 6)
	ctx := context.Background()
	old, err := s.templateOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.settled("revision 1 stable", v1alpha1.PhaseHealthy, 1, expect{old: 3}, nil)
	s.change("set-image")
	cur, err := s.templateOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.settled("canary at 10% with a header route", v1alpha1.PhasePaused, 1, expect{old: 3, cur: 1}, func(ctx context.Context, ro *v1alpha1.Rollout, o *observed) error {
		_, others, err := s.virtualService(ctx)
		if err == nil && len(others) != 1 {
			err = fmt.Errorf("header routes %v; want testers", others)
		}
		if err != nil {
			return err
		}
		return s.istioWeight(10)(ctx, ro, o)
	})

	ro, err := s.rollout(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.c.Delete(ctx, ro); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the Rollout gone, the Deployment back on stable and resumed, the VirtualService all stable", func(ctx context.Context) error {
		if _, err := s.rollout(ctx); !apierrors.IsNotFound(err) {
			return fmt.Errorf("rollout still there: %v", err)
		}
		d, err := s.deployment(ctx)
		if err != nil {
			return err
		}
		if h := kube.TemplateHash(&d.Spec.Template); h != old || d.Spec.Paused || d.Annotations[kube.AnnotationPausedBy] != "" || d.Annotations[kube.AnnotationManagedBy] != "" {
			return fmt.Errorf("deployment template %s (stable %s, canary %s), paused %v, annotations %v", h, old, cur, d.Spec.Paused, d.Annotations)
		}
		w, others, err := s.virtualService(ctx)
		if err != nil {
			return err
		}
		if w != 0 || len(others) != 0 {
			return fmt.Errorf("virtualservice canary weight %d, header routes %v", w, others)
		}
		o, err := s.observe(ctx)
		if err != nil {
			return err
		}
		if o.pods[old] != 3 || o.pods[cur] != 0 || len(o.sets[cur]) != 0 {
			return fmt.Errorf("pods by template %v, replicasets %v", o.pods, o.sets)
		}
		return nil
	})
	if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
		t.Errorf("kubectl rollout status: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "a RolloutDeleted event on the Deployment", func(ctx context.Context) error {
		out, err := s.env.Kubectl(ctx, "-n", s.ns, "get", "events", "--field-selector", "reason=RolloutDeleted")
		if err == nil && !strings.Contains(string(out), "stable revision 1") {
			err = fmt.Errorf("events: %s", out)
		}
		return err
	})
}

// secondRolloutRefused puts a second Rollout on a Deployment that one manages: it is refused,
// says which Rollout manages it, and is never Healthy; the first stays Healthy.
func secondRolloutRefused(t *testing.T, env *k8senv.Env) {
	s := newScenario(t, env, "second-rollout", "chat-api-stable", "chat-api-canary")
	s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{StableService: "chat-api-stable", CanaryService: "chat-api-canary",
		Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(50))}}}})
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
	ctx := context.Background()
	second := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api-b", Namespace: s.ns},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"},
			Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}}}}},
	}
	if err := s.c.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the second rollout refused", func(ctx context.Context) error {
		ro := &v1alpha1.Rollout{}
		if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "chat-api-b"}, ro); err != nil {
			return err
		}
		if ro.Status.Phase == v1alpha1.PhaseHealthy {
			return final{fmt.Errorf("the second rollout is Healthy: %s", ro.Status.Message)}
		}
		c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionValid)
		if ro.Status.Phase != v1alpha1.PhaseDegraded || c == nil || c.Status != metav1.ConditionFalse || c.Reason != "DeploymentInUse" || !strings.Contains(c.Message, "managed by rollout chat-api") {
			return fmt.Errorf("phase %s, Valid %+v", ro.Status.Phase, c)
		}
		events, err := (&kube.Commands{Client: s.c, Namespace: s.ns}).Events(ctx, "chat-api-b", 0)
		if err != nil {
			return err
		}
		for _, e := range events {
			if e.Reason == "DeploymentInUse" && strings.Contains(e.Message, "rollout chat-api") {
				return nil
			}
		}
		return fmt.Errorf("no DeploymentInUse event naming rollout chat-api among %d", len(events))
	})
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 10*time.Second)
}

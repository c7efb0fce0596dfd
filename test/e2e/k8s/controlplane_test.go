// Package k8s holds the end-to-end tests of Kubernetes mode, run on the real control plane of
// test/k8senv (make test-k8s).
package k8s

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/test/k8senv"
)

// crdDir holds the CRDs of the traffic layers the routers drive.
const crdDir = "../../k8s/crds"

// eventually polls cond every 100 ms until it returns nil, failing the test with cond's last
// error after timeout, or at once when cond returns a final error.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) {
			// Each try gets its own time, so that the deadline does not cut the last one short
			// and hide cond's own error behind a context error.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			last = cond(ctx)
			var f final
			if errors.As(last, &f) {
				return false, f
			}
			return last == nil, nil
		})
	if err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, last)
	}
}

// final marks an error after which eventually stops polling.
type final struct{ error }

func deployment(name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	podLabels := map[string]string{"app": name}
	for k, v := range labels {
		podLabels[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "example.com/" + name + ":v1",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
}

func TestControlPlane(t *testing.T) {
	env := k8senv.Start(t)
	cs := env.Clientset
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	t.Run("a Deployment of 3 replicas becomes Available with 3 Ready pods", func(t *testing.T) {
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, deployment("web", 3, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "Deployment web available", func(ctx context.Context) error {
			d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Status.ReadyReplicas != 3 || d.Status.AvailableReplicas != 3 || d.Status.ObservedGeneration != d.Generation {
				return fmt.Errorf("ready %d, available %d of 3", d.Status.ReadyReplicas, d.Status.AvailableReplicas)
			}
			return nil
		})
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 3 {
			t.Fatalf("got %d pods, want 3", len(pods.Items))
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				t.Errorf("pod %s: node %q, phase %s, IP %q; want scheduled, Running, with an IP", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP)
			}
		}
		// kubectl (built with the control plane) sees the same.
		out, err := env.Kubectl(ctx, "rollout", "status", "deployment/web", "--timeout=30s")
		if err != nil || !strings.Contains(string(out), "successfully rolled out") {
			t.Fatalf("kubectl rollout status: %v\n%s", err, out)
		}
	})

	t.Run("a Service selects the pods", func(t *testing.T) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "web"},
				Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The EndpointSlice controller (kube-controller-manager) lists the 3 Ready pods.
		eventually(t, 30*time.Second, "EndpointSlice of web with 3 ready endpoints", func(ctx context.Context) error {
			slices, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
			if err != nil {
				return err
			}
			ready := 0
			for _, s := range slices.Items {
				for _, ep := range s.Endpoints {
					if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
						ready++
					}
				}
			}
			if ready != 3 {
				return fmt.Errorf("%d ready endpoints", ready)
			}
			return nil
		})
	})

	t.Run("the traffic-layer CRDs install and store routing objects", func(t *testing.T) {
		env.ApplyFiles(t, crdDir)
		objs, err := env.Apply(ctx, []byte(routingObjects))
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != 4 {
			t.Fatalf("applied %d objects, want 4", len(objs))
		}
		tests := []struct {
			gvk  schema.GroupVersionKind
			name string
			path []string // to a field that must read back as written
			want string
		}{
			{schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}, "web",
				[]string{"spec", "rules"}, "20"},
			{schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1beta1", Kind: "VirtualService"}, "web",
				[]string{"spec", "http"}, "20"},
			{schema.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha2", Kind: "TrafficSplit"}, "web",
				[]string{"spec", "backends"}, "20"},
			{schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}, "web-canary",
				[]string{"metadata", "annotations", "nginx.ingress.kubernetes.io/canary-weight"}, "20"},
		}
		for _, tc := range tests {
			t.Run(tc.gvk.Kind, func(t *testing.T) {
				u := &unstructured.Unstructured{}
				u.SetGroupVersionKind(tc.gvk)
				if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: tc.name}, u); err != nil {
					t.Fatal(err)
				}
				if got := canaryWeight(u.Object, tc.path); got != tc.want {
					t.Errorf("canary weight at %v = %v, want %v", tc.path, got, tc.want)
				}
			})
		}
	})

	t.Run("kwok hooks: not-ready pods and failing Job pods", func(t *testing.T) {
		if _, err := cs.AppsV1().Deployments("default").Create(ctx,
			deployment("broken", 1, map[string]string{"kwok.ramp.dev/not-ready": "true"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			labels map[string]string
			want   batchv1.JobConditionType
		}{
			{"job-ok", nil, batchv1.JobComplete},
			{"job-fail", map[string]string{"kwok.ramp.dev/fail": "true"}, batchv1.JobFailed},
		} {
			if _, err := cs.BatchV1().Jobs("default").Create(ctx, job(tc.name, tc.labels), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 60*time.Second, "Job "+tc.name+" "+string(tc.want), func(ctx context.Context) error {
				j, err := cs.BatchV1().Jobs("default").Get(ctx, tc.name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				for _, c := range j.Status.Conditions {
					if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
						if c.Type != tc.want {
							return final{fmt.Errorf("job %s is %s, want %s", tc.name, c.Type, tc.want)}
						}
						return nil
					}
				}
				return errors.New("not finished yet")
			})
		}
		// By now the broken pod has long been scheduled; it runs but is never Ready.
		eventually(t, 30*time.Second, "pod of broken Running", func(ctx context.Context) error {
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=broken"})
			if err != nil {
				return err
			}
			if len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
				return fmt.Errorf("pods %d, want 1 Running", len(pods.Items))
			}
			for _, c := range pods.Items[0].Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return final{errors.New("pod of broken became Ready")}
				}
			}
			return nil
		})
	})

	t.Run("RBAC limits users and ServiceAccounts to their ClusterRole", func(t *testing.T) {
		viewer, viewerKubeconfig := env.KubeconfigFor(t, "view")
		// A ServiceAccount bound the way config/ binds the controller's account.
		saCfg, _ := env.ServiceAccountConfig(t, "rbac-test", "reader")
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "rbac-test-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: "rbac-test"}},
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		nobody, _ := env.UserConfig(t, "nobody")
		for _, tc := range []struct {
			name      string
			c         kubernetes.Interface
			canList   bool
			canCreate bool
		}{
			{"user bound to view", mustClientset(t, viewer), true, false},
			{"ServiceAccount bound to view", mustClientset(t, saCfg), true, false},
			{"unbound user", mustClientset(t, nobody), false, false},
			{"admin", cs, true, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := tc.c
				eventually(t, 10*time.Second, "list pods allowed="+fmt.Sprint(tc.canList), func(ctx context.Context) error {
					_, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
					return allowed(err, tc.canList)
				})
				d := deployment("rbac-"+strings.ReplaceAll(tc.name, " ", "-"), 1, nil)
				_, err := c.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err := allowed(err, tc.canCreate); err != nil {
					t.Fatalf("create Deployment: %v", err)
				}
			})
		}
		// The kubeconfig file works for kubectl too.
		if out, err := env.Kubectl(ctx, "--kubeconfig="+viewerKubeconfig, "get", "pods"); err != nil {
			t.Fatalf("kubectl get pods as viewer: %v\n%s", err, out)
		}
	})
}

func mustClientset(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// allowed checks err against the expected authorization outcome.
func allowed(err error, want bool) error {
	switch {
	case want && err != nil:
		return fmt.Errorf("want allowed, got %w", err)
	case !want && !apierrors.IsForbidden(err):
		return fmt.Errorf("want Forbidden, got %v", err)
	}
	return nil
}

func job(name string, labels map[string]string) *batchv1.Job {
	backoff := int32(0)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "check", Image: "example.com/check:v1"}},
				},
			},
		},
	}
}

// canaryWeight follows path in obj and returns, as text, the string found there or the weight
// of the "web-canary" backend below it (a backendRef/backend named so, or an Istio destination
// with that host).
func canaryWeight(obj any, path []string) string {
	for _, p := range path {
		m, ok := obj.(map[string]any)
		if !ok {
			return ""
		}
		obj = m[p]
	}
	if s, ok := obj.(string); ok {
		return s
	}
	found := ""
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			dest, _ := v["destination"].(map[string]any)
			if w, ok := v["weight"]; ok && (v["name"] == "web-canary" || v["service"] == "web-canary" || (dest != nil && dest["host"] == "web-canary")) {
				found = fmt.Sprint(w)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(obj)
	return found
}

// routingObjects is what the routers write at a 20% canary step, one object per traffic layer.
const routingObjects = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs:
  - name: gateway
  rules:
  - matches:
    - headers:
      - name: x-version
        value: canary
    backendRefs:
    - name: web-canary
      port: 80
  - backendRefs:
    - name: web-stable
      port: 80
      weight: 80
    - name: web-canary
      port: 80
      weight: 20
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
  - match:
    - headers:
        x-version:
          exact: canary
    route:
    - destination: {host: web-canary}
  - route:
    - destination: {host: web-stable}
      weight: 80
    - destination: {host: web-canary}
      weight: 20
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: web
spec:
  service: web
  backends:
  - service: web-stable
    weight: 80
  - service: web-canary
    weight: 20
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-weight: "20"
    nginx.ingress.kubernetes.io/canary-by-header: x-version
    nginx.ingress.kubernetes.io/canary-by-header-value: canary
spec:
  ingressClassName: nginx
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web-canary
            port: {number: 80}
`

package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// routes is what a test reads off a routing object: the canary's percent of the weighed
// traffic, and the header match that sends to the canary ("x-version=canary"; "" for none).
type routes struct {
	weight int64
	header string
}

func (r routes) String() string {
	return fmt.Sprintf("canary %d%%, header route %q", r.weight, r.header)
}

// routerCase is one traffic router: the routing object the team owns (if any), how the
// rollout names it, and how the test reads and, by hand, changes the canary weight.
type routerCase struct {
	name string
	// headers is whether the router can express a header route.
	headers bool
	routing v1alpha1.TrafficRouting
	// object is the team's routing object, created before the rollout; nil for none.
	object func(ns string) *unstructured.Unstructured
	// gvk and objName locate the object the router writes, which read and tamper work on;
	// made is whether ramp makes it (and until it does, nothing goes to the canary).
	gvk     schema.GroupVersionKind
	objName string
	made    bool
	read    func(u *unstructured.Unstructured) (routes, error)
	// tamper sets the canary weight on the object by hand and drops ramp's header route, as
	// a person with kubectl edit does.
	tamper func(u *unstructured.Unstructured, weight int64) error
}

var (
	virtualServiceGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1beta1", Kind: "VirtualService"}
	httpRouteGVK      = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}
	trafficSplitGVK   = schema.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha2", Kind: "TrafficSplit"}
	ingressGVK        = schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}
)

// testRouters rolls chat-api out through each traffic router with the running controller:
// healthy, the routing object shows each step's weight and header match, a weight changed by
// hand is put back (and reported), and the rollout ends Healthy with nothing left on the
// canary; failing, the analysis aborts the rollout and the routing object sends everything to
// stable again. A header route with SMI, which cannot express it, makes the Rollout invalid.
func testRouters(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	// The minimal stand-ins, then the upstream HTTPRoute and VirtualService CRDs over them,
	// before the controller starts: it watches the routing kinds the cluster serves then.
	env.ApplyFiles(t, filepath.Join(repoRoot, "test/k8s/crds"), filepath.Join(repoRoot, "internal/kube/testdata/crds"))
	startController(t, cfg, "routers", metrics, kube.Options{})

	services := []string{"chat-api-stable", "chat-api-canary"}
	for _, rc := range []routerCase{
		{
			name: "istio", headers: true,
			routing: v1alpha1.TrafficRouting{Istio: &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api", Routes: []string{"primary"}}}},
			object: func(ns string) *unstructured.Unstructured {
				return object(virtualServiceGVK, ns, "chat-api", map[string]any{"hosts": []any{"chat-api"}, "http": []any{map[string]any{
					"name":  "primary",
					"route": []any{map[string]any{"destination": map[string]any{"host": "chat-api-stable"}, "weight": int64(100)}},
				}}})
			},
			gvk: virtualServiceGVK, objName: "chat-api",
			read: func(u *unstructured.Unstructured) (routes, error) {
				var out routes
				http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
				for _, h := range http {
					hm := h.(map[string]any)
					dests, _, _ := unstructured.NestedSlice(hm, "route")
					switch hm["name"] {
					case "primary":
						out.weight = weightOf(dests, "chat-api-canary", "destination", "host")
					case "testers":
						if len(dests) != 1 || weightOf(dests, "chat-api-canary", "destination", "host") != 100 {
							return out, fmt.Errorf("header route testers sends %v; want all to chat-api-canary", dests)
						}
						ms, _, _ := unstructured.NestedSlice(hm, "match")
						var hs []string
						for _, m := range ms {
							headers, _, _ := unstructured.NestedMap(m.(map[string]any), "headers")
							for name, v := range headers {
								exact, _, _ := unstructured.NestedString(v.(map[string]any), "exact")
								hs = append(hs, name+"="+exact)
							}
						}
						out.header = strings.Join(hs, ",")
					default:
						return out, fmt.Errorf("unexpected http route %v", hm["name"])
					}
				}
				return out, nil
			},
			tamper: func(u *unstructured.Unstructured, w int64) error {
				http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
				var kept []any
				for _, h := range http {
					if hm := h.(map[string]any); hm["name"] == "primary" {
						hm["route"] = []any{
							map[string]any{"destination": map[string]any{"host": "chat-api-stable"}, "weight": 100 - w},
							map[string]any{"destination": map[string]any{"host": "chat-api-canary"}, "weight": w},
						}
						kept = append(kept, hm)
					}
				}
				return unstructured.SetNestedSlice(u.Object, kept, "spec", "http")
			},
		},
		{
			name: "gatewayapi", headers: true,
			routing: v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPITrafficRouting{HTTPRoute: "chat-api"}},
			object: func(ns string) *unstructured.Unstructured {
				return object(httpRouteGVK, ns, "chat-api", map[string]any{
					"parentRefs": []any{map[string]any{"name": "public"}},
					"rules": []any{map[string]any{
						"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/"}}},
						"backendRefs": []any{map[string]any{"name": "chat-api-stable", "port": int64(80)}},
					}},
				})
			},
			gvk: httpRouteGVK, objName: "chat-api",
			read: func(u *unstructured.Unstructured) (routes, error) {
				var out routes
				rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
				for _, r := range rules {
					rm := r.(map[string]any)
					refs, _, _ := unstructured.NestedSlice(rm, "backendRefs")
					if rm["name"] == "testers" {
						if len(refs) != 1 || refs[0].(map[string]any)["name"] != "chat-api-canary" {
							return out, fmt.Errorf("header rule testers sends to %v; want chat-api-canary", refs)
						}
						ms, _, _ := unstructured.NestedSlice(rm, "matches")
						var hs []string
						for _, m := range ms {
							headers, _, _ := unstructured.NestedSlice(m.(map[string]any), "headers")
							for _, h := range headers {
								hm := h.(map[string]any)
								if hm["type"] != "Exact" {
									return out, fmt.Errorf("header match %v; want type Exact", hm)
								}
								hs = append(hs, fmt.Sprint(hm["name"], "=", hm["value"]))
							}
						}
						out.header = strings.Join(hs, ",")
						continue
					}
					out.weight = weightOf(refs, "chat-api-canary", "name")
				}
				return out, nil
			},
			tamper: func(u *unstructured.Unstructured, w int64) error {
				rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
				var kept []any
				for _, r := range rules {
					if rm := r.(map[string]any); rm["name"] == nil {
						rm["backendRefs"] = []any{
							map[string]any{"name": "chat-api-stable", "port": int64(80), "weight": 100 - w},
							map[string]any{"name": "chat-api-canary", "port": int64(80), "weight": w},
						}
						kept = append(kept, rm)
					}
				}
				return unstructured.SetNestedSlice(u.Object, kept, "spec", "rules")
			},
		},
		{
			name: "smi", headers: false,
			routing: v1alpha1.TrafficRouting{SMI: &v1alpha1.SMITrafficRouting{}},
			gvk:     trafficSplitGVK, objName: "chat-api", made: true, // named after the rollout
			read: func(u *unstructured.Unstructured) (routes, error) {
				if root, _, _ := unstructured.NestedString(u.Object, "spec", "service"); root != "chat-api-stable" {
					return routes{}, fmt.Errorf("root service %q; want chat-api-stable", root)
				}
				backends, _, _ := unstructured.NestedSlice(u.Object, "spec", "backends")
				if len(backends) != 2 || weightOf(backends, "chat-api-stable", "service")+weightOf(backends, "chat-api-canary", "service") != 100 {
					return routes{}, fmt.Errorf("backends %v; want chat-api-stable and chat-api-canary, 100 in all", backends)
				}
				return routes{weight: weightOf(backends, "chat-api-canary", "service")}, nil
			},
			tamper: func(u *unstructured.Unstructured, w int64) error {
				return unstructured.SetNestedSlice(u.Object, []any{
					map[string]any{"service": "chat-api-stable", "weight": 100 - w},
					map[string]any{"service": "chat-api-canary", "weight": w},
				}, "spec", "backends")
			},
		},
		{
			name: "nginx", headers: true,
			routing: v1alpha1.TrafficRouting{Nginx: &v1alpha1.NginxTrafficRouting{StableIngress: "chat-api"}},
			object: func(ns string) *unstructured.Unstructured {
				return object(ingressGVK, ns, "chat-api", map[string]any{"rules": []any{map[string]any{
					"host": "chat-api.example.com",
					"http": map[string]any{"paths": []any{map[string]any{
						"path": "/", "pathType": "Prefix",
						"backend": map[string]any{"service": map[string]any{"name": "chat-api-stable", "port": map[string]any{"number": int64(80)}}},
					}}},
				}}})
			},
			gvk: ingressGVK, objName: kube.CanaryIngressName("chat-api", "chat-api"), made: true,
			read: func(u *unstructured.Unstructured) (routes, error) {
				a := u.GetAnnotations()
				svc := ""
				rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
				if len(rules) == 1 {
					paths, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "http", "paths")
					if len(paths) == 1 {
						svc, _, _ = unstructured.NestedString(paths[0].(map[string]any), "backend", "service", "name")
					}
				}
				if a["nginx.ingress.kubernetes.io/canary"] != "true" || svc != "chat-api-canary" {
					return routes{}, fmt.Errorf("canary ingress with annotations %v sends to %q; want a canary ingress to chat-api-canary", a, svc)
				}
				w, err := strconv.ParseInt(a["nginx.ingress.kubernetes.io/canary-weight"], 10, 64)
				if err != nil {
					return routes{}, fmt.Errorf("canary-weight: %w", err)
				}
				out := routes{weight: w}
				if h := a["nginx.ingress.kubernetes.io/canary-by-header"]; h != "" {
					out.header = h + "=" + a["nginx.ingress.kubernetes.io/canary-by-header-value"]
				}
				return out, nil
			},
			tamper: func(u *unstructured.Unstructured, w int64) error {
				a := u.GetAnnotations()
				a["nginx.ingress.kubernetes.io/canary-weight"] = strconv.FormatInt(w, 10)
				delete(a, "nginx.ingress.kubernetes.io/canary-by-header")
				delete(a, "nginx.ingress.kubernetes.io/canary-by-header-value")
				u.SetAnnotations(a)
				return nil
			},
		},
		{
			name: "alb", headers: true,
			routing: v1alpha1.TrafficRouting{ALB: &v1alpha1.ALBTrafficRouting{Ingress: "chat-api", ServicePort: 80}},
			object: func(ns string) *unstructured.Unstructured {
				return object(ingressGVK, ns, "chat-api", map[string]any{"ingressClassName": "alb", "rules": []any{map[string]any{
					"host": "chat-api.example.com",
					"http": map[string]any{"paths": []any{map[string]any{
						"path": "/", "pathType": "Prefix",
						"backend": map[string]any{"service": map[string]any{"name": "chat-api-stable", "port": map[string]any{"number": int64(80)}}},
					}}},
				}}})
			},
			gvk: ingressGVK, objName: "chat-api",
			read:   readALB,
			tamper: tamperALB,
		},
	} {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			t.Run("healthy", func(t *testing.T) {
				t.Parallel()
				routerRollout(t, env, metrics, rc, "routes-"+rc.name+"-healthy", 0)
			})
			t.Run("failing", func(t *testing.T) {
				t.Parallel()
				routerRollout(t, env, metrics, rc, "routes-"+rc.name+"-failing", 0.5)
			})
			if !rc.headers {
				t.Run("header route refused", func(t *testing.T) {
					t.Parallel()
					headerRouteRefused(t, env, rc, "routes-"+rc.name+"-headers", services)
				})
			}
		})
	}
}

// testersRoute is the header route of the tests: testers reach the canary with
// x-version: canary.
var testersRoute = v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}}}}

// routerRollout rolls revision 2 out through rc's router in namespace ns, its analysis
// measuring errRate, and checks the routing object at every pause and at the end.
func routerRollout(t *testing.T, env *k8senv.Env, metrics *metricsServer, rc routerCase, ns string, errRate float64) {
	ctx := context.Background()
	s := newScenario(t, env, ns, "chat-api-stable", "chat-api-canary")
	if rc.object != nil {
		if err := s.c.Create(ctx, rc.object(ns)); err != nil {
			t.Fatal(err)
		}
	}
	metrics.set(ns+"/chat-api", 2, errRate)

	// Given a canary with a header route (where the router has them) and two weights, each
	// held by a pause, then an analysis.
	header := ""
	var steps []v1alpha1.CanaryStep
	type pausePoint struct {
		step int32
		want routes
	}
	var pauses []pausePoint
	pause := func(w int64) {
		steps = append(steps, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}})
		pauses = append(pauses, pausePoint{int32(len(steps) - 1), routes{w, header}})
	}
	tr := rc.routing
	if rc.headers {
		tr.ManagedRoutes = []v1alpha1.ManagedRoute{{Name: testersRoute.Name}}
		steps = append(steps, v1alpha1.CanaryStep{SetHeaderRoute: &testersRoute})
		header = "x-version=canary"
		pause(0)
	}
	steps = append(steps, v1alpha1.CanaryStep{SetWeight: ptr(int32(20))})
	pause(20)
	drift := len(pauses) - 1 // the pause where the weight is changed by hand
	steps = append(steps, v1alpha1.CanaryStep{SetWeight: ptr(int32(50))})
	pause(50)
	steps = append(steps, v1alpha1.CanaryStep{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}})
	s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary", TrafficRouting: &tr, Steps: steps,
	}})
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)

	// When the image changes, then at each pause the routing object holds that step's weight
	// and header match.
	s.setImage(v2)
	cmds := &kube.Commands{Client: s.c, Namespace: ns}
	for i, p := range pauses {
		eventually(t, 60*time.Second, fmt.Sprintf("paused at step %d with %s", p.step, p.want), func(ctx context.Context) error {
			ro, err := s.rollout(ctx)
			if err != nil {
				return err
			}
			if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CurrentStepIndex == nil || *ro.Status.CurrentStepIndex != p.step {
				return fmt.Errorf("phase %s at step %v: %s", ro.Status.Phase, ptrString(ro.Status.CurrentStepIndex), ro.Status.Message)
			}
			return rc.check(ctx, s, p.want)
		})
		if i == drift && errRate == 0 {
			// When someone changes the canary weight and drops the header route by hand,
			// then the controller puts them back and says so in an event. (An edit made
			// while the controller is between reading the routes back and writing them is
			// put back without the event: the controller may still be deciding after its
			// last write, so edit again.)
			wantEvent := fmt.Sprintf("canaryWeight: want %d, got 70", p.want.weight)
			if rc.headers {
				wantEvent += `; headerRoutes: want [testers{x-version="canary"}], got []`
			}
			for attempt := 1; ; attempt++ {
				if err := rc.edit(ctx, s, 70); err != nil {
					t.Fatal(err)
				}
				eventually(t, 20*time.Second, "the controller repairs the weight set by hand", func(ctx context.Context) error {
					return rc.check(ctx, s, p.want)
				})
				// Events are written a moment after the controller records them.
				var err error
				_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
					err = hasEvent(ctx, cmds, "TrafficDrift", wantEvent) // not cut short by the deadline
					return err == nil, nil
				})
				if err == nil {
					break
				}
				if attempt == 3 {
					t.Fatalf("the weight set by hand was put back %d times, never reported: %v", attempt, err)
				}
				t.Logf("attempt %d: %v", attempt, err)
			}
		}
		if _, err := cmds.Promote(ctx, "chat-api", false); err != nil {
			t.Fatalf("promote at step %d: %v", p.step, err)
		}
	}

	end := routes{}
	if errRate > 0 {
		// When the analysis fails, then the rollout aborts, and the routing object and both
		// Services send everything to revision 1.
		ro := s.waitPhase(v1alpha1.PhaseDegraded, 1, 60*time.Second)
		if !strings.Contains(ro.Status.Message, "analysis") {
			t.Errorf("degraded message %q does not say the analysis failed", ro.Status.Message)
		}
		eventually(t, 30*time.Second, "the routing object sends nothing to the canary", func(ctx context.Context) error { return rc.check(ctx, s, end) })
		s.waitReplicas(map[string]int32{v1: 3}, 60*time.Second)
		s.waitSelects("chat-api-stable", v1)
		s.waitSelects("chat-api-canary", v1)
		noFalseDrift(ctx, t, cmds)
		return
	}

	// When the analysis passes, then revision 2 is stable, the stable Service selects it, and
	// the routing object keeps no canary weight and no header match.
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 60*time.Second)
	eventually(t, 30*time.Second, "the routing object sends nothing to the canary", func(ctx context.Context) error { return rc.check(ctx, s, end) })
	s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
	s.waitSelects("chat-api-stable", v2)
	noFalseDrift(ctx, t, cmds)
}

// noFalseDrift checks that the controller took none of its own writes for drift: every
// TrafficDrift event is about the weight of 70 set by hand.
func noFalseDrift(ctx context.Context, t *testing.T, cmds *kube.Commands) {
	t.Helper()
	found, err := eventsOf(ctx, cmds, "TrafficDrift")
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range found {
		if !strings.Contains(msg, "got 70") {
			t.Errorf("TrafficDrift event without a change by hand: %s", msg)
		}
	}
}

// headerRouteRefused creates a rollout with a header route through a router that cannot
// express it: the Rollout is Valid=False with an InvalidSpec event naming the step, and ramp
// makes no routing object.
func headerRouteRefused(t *testing.T, env *k8senv.Env, rc routerCase, ns string, services []string) {
	ctx := context.Background()
	s := newScenario(t, env, ns, services...)
	tr := rc.routing
	tr.ManagedRoutes = []v1alpha1.ManagedRoute{{Name: testersRoute.Name}}
	s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary", TrafficRouting: &tr,
		Steps: []v1alpha1.CanaryStep{{SetHeaderRoute: &testersRoute}, {SetWeight: ptr(int32(20))}},
	}})
	const want = "spec.strategy.canary.steps[0].setHeaderRoute: cannot be used with trafficRouting.smi"
	cmds := &kube.Commands{Client: s.c, Namespace: ns}
	eventually(t, 30*time.Second, "the rollout is invalid", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionValid)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "InvalidSpec" || !strings.Contains(c.Message, want) {
			return fmt.Errorf("Valid condition %+v; want False, InvalidSpec, %q", c, want)
		}
		return hasEvent(ctx, cmds, "InvalidSpec", want)
	})
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(rc.gvk)
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: rc.objName}, u); !apierrors.IsNotFound(err) {
		t.Errorf("routing object %s of an invalid rollout: %v", rc.objName, err)
	}
}

// check compares the routing object with want.
func (rc routerCase) check(ctx context.Context, s *scenario, want routes) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(rc.gvk)
	err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: rc.objName}, u)
	var got routes
	switch {
	case apierrors.IsNotFound(err) && rc.made:
	case err != nil:
		return err
	default:
		if got, err = rc.read(u); err != nil {
			return fmt.Errorf("%s %s: %w", rc.gvk.Kind, rc.objName, err)
		}
	}
	if got != want {
		return fmt.Errorf("%s %s: %s; want %s", rc.gvk.Kind, rc.objName, got, want)
	}
	return nil
}

// edit sets the canary weight of the routing object by hand.
func (rc routerCase) edit(ctx context.Context, s *scenario, weight int64) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(rc.gvk)
		if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: rc.objName}, u); err != nil {
			return err
		}
		if err := rc.tamper(u, weight); err != nil {
			return err
		}
		return s.c.Update(ctx, u)
	})
}

// hasEvent finds an event of reason on the rollout whose message contains msg.
func hasEvent(ctx context.Context, cmds *kube.Commands, reason, msg string) error {
	events, err := cmds.Events(ctx, "chat-api", 0)
	if err != nil {
		return err
	}
	var reasons []string
	for _, e := range events {
		if e.Reason == reason && strings.Contains(e.Message, msg) {
			return nil
		}
		reasons = append(reasons, e.Reason+": "+e.Message)
	}
	return fmt.Errorf("no %s event saying %q among %d:\n%s", reason, msg, len(events), strings.Join(reasons, "\n"))
}

// eventsOf returns the messages of the rollout's events of reason.
func eventsOf(ctx context.Context, cmds *kube.Commands, reason string) ([]string, error) {
	events, err := cmds.Events(ctx, "chat-api", 0)
	var out []string
	for _, e := range events {
		if e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out, err
}

// object makes an unstructured object of kind gvk with spec.
func object(gvk schema.GroupVersionKind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// weightOf sums the weights of the entries of list whose field at path names svc.
func weightOf(list []any, svc string, path ...string) int64 {
	var w int64
	for _, e := range list {
		m := e.(map[string]any)
		if name, _, _ := unstructured.NestedString(m, path...); name == svc {
			n, _, _ := unstructured.NestedInt64(m, "weight")
			w += n
		}
	}
	return w
}

func ptrString(p *int32) string {
	if p == nil {
		return "<nil>"
	}
	return strconv.Itoa(int(*p))
}

// The AWS Load Balancer Controller's annotations on the alb case's Ingress: the action of the
// paths to chat-api-stable (the default rootService), and the testers route's action and
// conditions.
const (
	albRootAction = "alb.ingress.kubernetes.io/actions.chat-api-stable"
	albHRAction   = "alb.ingress.kubernetes.io/actions.testers"
	albHRConds    = "alb.ingress.kubernetes.io/conditions.testers"
)

// albTargetGroups reads the target groups of a forward action annotation.
func albTargetGroups(raw string) ([]any, error) {
	var act struct {
		Type          string `json:"type"`
		ForwardConfig struct {
			TargetGroups []struct {
				ServiceName string `json:"serviceName"`
				ServicePort int64  `json:"servicePort"`
				Weight      int64  `json:"weight"`
			} `json:"targetGroups"`
		} `json:"forwardConfig"`
	}
	if err := json.Unmarshal([]byte(raw), &act); err != nil {
		return nil, err
	}
	if act.Type != "forward" {
		return nil, fmt.Errorf("action type %q; want forward", act.Type)
	}
	var out []any
	for _, tg := range act.ForwardConfig.TargetGroups {
		if tg.ServicePort != 80 {
			return nil, fmt.Errorf("target group %s on port %d; want 80", tg.ServiceName, tg.ServicePort)
		}
		out = append(out, map[string]any{"serviceName": tg.ServiceName, "weight": tg.Weight})
	}
	return out, nil
}

// albPaths lists the Ingress's paths as their backends, "service:port".
func albPaths(u *unstructured.Unstructured) []string {
	var out []string
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	for _, r := range rules {
		paths, _, _ := unstructured.NestedSlice(r.(map[string]any), "http", "paths")
		for _, p := range paths {
			svc, _, _ := unstructured.NestedMap(p.(map[string]any), "backend", "service")
			port, _, _ := unstructured.NestedString(svc, "port", "name")
			if port == "" {
				n, _, _ := unstructured.NestedInt64(svc, "port", "number")
				port = strconv.FormatInt(n, 10)
			}
			out = append(out, fmt.Sprint(svc["name"], ":", port))
		}
	}
	return out
}

// readALB reads the canary weight off the root action and the header route off its path,
// action and conditions; before ramp's first write the Ingress sends everything to stable.
func readALB(u *unstructured.Unstructured) (routes, error) {
	a := u.GetAnnotations()
	paths := strings.Join(albPaths(u), " ")
	var out routes
	raw, ok := a[albRootAction]
	if !ok {
		if paths != "chat-api-stable:80" {
			return out, fmt.Errorf("paths %s without ramp's action", paths)
		}
		return out, nil
	}
	tgs, err := albTargetGroups(raw)
	if err != nil {
		return out, fmt.Errorf("%s: %w", albRootAction, err)
	}
	if len(tgs) != 2 || weightOf(tgs, "chat-api-stable", "serviceName")+weightOf(tgs, "chat-api-canary", "serviceName") != 100 {
		return out, fmt.Errorf("%s: target groups %v; want chat-api-stable and chat-api-canary, 100 in all", albRootAction, tgs)
	}
	out.weight = weightOf(tgs, "chat-api-canary", "serviceName")
	conds, hasConds := a[albHRConds]
	switch {
	case !hasConds && paths == "chat-api-stable:use-annotation":
		return out, nil
	case !hasConds || paths != "testers:use-annotation chat-api-stable:use-annotation":
		return out, fmt.Errorf("paths %s, conditions %q; want the root path after the testers path when the route is set", paths, conds)
	}
	hr, err := albTargetGroups(a[albHRAction])
	if err != nil || len(hr) != 1 || weightOf(hr, "chat-api-canary", "serviceName") != 100 {
		return out, fmt.Errorf("%s: %v %v; want all to chat-api-canary", albHRAction, hr, err)
	}
	var cs []struct {
		Field  string `json:"field"`
		Header struct {
			Name   string   `json:"httpHeaderName"`
			Values []string `json:"values"`
		} `json:"httpHeaderConfig"`
	}
	if err := json.Unmarshal([]byte(conds), &cs); err != nil {
		return out, fmt.Errorf("%s: %w", albHRConds, err)
	}
	var hs []string
	for _, c := range cs {
		if c.Field != "http-header" || len(c.Header.Values) != 1 {
			return out, fmt.Errorf("%s: condition %+v; want one http-header value", albHRConds, c)
		}
		hs = append(hs, c.Header.Name+"="+c.Header.Values[0])
	}
	out.header = strings.Join(hs, ",")
	return out, nil
}

// tamperALB sets the root action's weights by hand and drops the testers route: its path and
// annotations.
func tamperALB(u *unstructured.Unstructured, w int64) error {
	a := u.GetAnnotations()
	a[albRootAction] = fmt.Sprintf(`{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"chat-api-stable","servicePort":80,"weight":%d},{"serviceName":"chat-api-canary","servicePort":80,"weight":%d}]}}`, 100-w, w)
	delete(a, albHRAction)
	delete(a, albHRConds)
	u.SetAnnotations(a)
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	for _, r := range rules {
		paths, _, _ := unstructured.NestedSlice(r.(map[string]any), "http", "paths")
		var kept []any
		for _, p := range paths {
			if name, _, _ := unstructured.NestedString(p.(map[string]any), "backend", "service", "name"); name != "testers" {
				kept = append(kept, p)
			}
		}
		if err := unstructured.SetNestedSlice(r.(map[string]any), kept, "http", "paths"); err != nil {
			return err
		}
	}
	return unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
}

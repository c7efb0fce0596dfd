package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// kubeNamespace holds the Deployments and Rollouts of the Kubernetes run.
const kubeNamespace = "scale"

// podsPerNode is what test/k8senv's fake nodes hold.
const podsPerNode = 110

func runKube(ctx context.Context, dir, bin string) (*result, error) {
	n := *rollouts
	k8sDir := filepath.Join(dir, "k8s")
	if err := os.MkdirAll(k8sDir, 0o700); err != nil {
		return nil, err
	}
	nodes := n/podsPerNode + 2
	log.Printf("starting the control plane (%d kwok nodes)", nodes)
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	env, err := k8senv.New(startCtx, k8senv.Options{Nodes: nodes, Dir: k8sDir})
	cancel()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			log.Printf("stop control plane: %v", err)
		}
	}()
	crds, err := filepath.Glob("config/crd/bases/*.yaml")
	if err != nil || len(crds) == 0 {
		return nil, fmt.Errorf("ramp's CRDs in config/crd/bases: none found (%v)", err)
	}
	for _, f := range crds {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if _, err := env.Apply(ctx, b); err != nil {
			return nil, fmt.Errorf("apply %s: %w", f, err)
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 200, 400 // the bench's own client: creating 2n objects in reasonable time
	c, err := client.New(cfg, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		return nil, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeNamespace}}); err != nil {
		return nil, err
	}

	addrs, err := freeAddrs(1)
	if err != nil {
		return nil, err
	}
	metricsAddr := addrs[0]
	procEnv, pprofAddr, err := profileEnv()
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "controller.log")
	cmd, stop, err := startRamp(bin, procEnv, logFile, "controller", "--kubeconfig", env.Kubeconfig,
		"--leader-elect=false", "--metrics-bind-address", metricsAddr, "--health-probe-bind-address", "0")
	if err != nil {
		return nil, err
	}
	defer stop()
	pid := cmd.Process.Pid
	p := rampProc{pid: pid, name: "ramp controller", logName: "controller's log", logFile: logFile}
	fail := func(err error) (*result, error) { return nil, p.fail(err) }
	metricsURL := "http://" + metricsAddr + "/metrics"
	baseRSS, err := p.waitServing(ctx, "the controller's metrics endpoint", metricsURL, time.Minute, 200*time.Millisecond)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	if err := createAll(ctx, c, n); err != nil {
		return fail(err)
	}
	log.Printf("created %d Deployments and Rollouts in %s", n, time.Since(start).Round(time.Millisecond))
	var rolloutsSettled time.Time
	check := func() (bool, string, error) {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		var list v1alpha1.RolloutList
		if err := c.List(lctx, &list, client.InNamespace(kubeNamespace)); err != nil {
			return false, err.Error(), nil
		}
		ok, state := settled(list.Items, n, func(r v1alpha1.Rollout) bool { return r.Status.ObservedGeneration == r.Generation })
		// The Deployments too: a Rollout is Healthy once its pods are ready, often long before
		// kube-controller-manager has caught up with the Deployments ramp paused (its own client
		// is limited to 20 requests/s); each status it writes then wakes the Rollout, and a window
		// opened before would measure the control plane's backlog, not an idle ramp.
		var deps appsv1.DeploymentList
		if err := c.List(lctx, &deps, client.InNamespace(kubeNamespace)); err != nil {
			return false, err.Error(), nil
		}
		if ok && rolloutsSettled.IsZero() {
			rolloutsSettled = time.Now()
			log.Printf("all %d Rollouts Healthy with their pods ready %s after the first create; waiting for the Deployment controller", n, rolloutsSettled.Sub(start).Round(time.Second))
		}
		caught := deploymentsCaughtUp(deps.Items)
		state += fmt.Sprintf("; %d of %d Deployments paused and caught up by their controller", caught, n)
		return ok && caught == n, state, nil
	}
	others := children(os.Getpid())
	for name, op := range others {
		if op == pid {
			delete(others, name)
		}
	}
	m, load, err := p.idleWindow(ctx, "Rollouts", "the first create", start, 2*time.Second, check, metricsURL, pprofAddr, others)
	if err != nil {
		return nil, err
	}
	res := &result{
		mode: "kubernetes", rollouts: n, window: m.window, baseRSS: baseRSS, target: 0.5,
		detail: "one Deployment of 1 pod each (kwok), canary without a router",
		load:   load, others: m.others,
		counters: []counter{
			m.counter("decisions (ramp_reconcile_duration_seconds_count)", "ramp_reconcile_duration_seconds_count", `mode="kubernetes"`),
			m.counter("reconciles (controller_runtime_reconcile_total)", "controller_runtime_reconcile_total"),
			m.counter("GC cycles (go_gc_duration_seconds_count)", "go_gc_duration_seconds_count"),
		},
		gauges: []counter{
			{what: "goroutines after the window", value: sumMetric(m.after, "go_goroutines")},
			{what: "Go heap in use after the window, MiB", value: sumMetric(m.after, "go_memstats_heap_inuse_bytes") / (1 << 20)},
			// While settling: how long one reconcile took (its API calls, client-side rate
			// limiting included) and how long a Rollout waited in the queue for the one worker.
			{what: "mean reconcile since start, ms (workqueue_work_duration_seconds)", value: 1000 * meanOf(m.after, "workqueue_work_duration_seconds", `name="rollout"`)},
			{what: "mean queue wait since start, ms (workqueue_queue_duration_seconds)", value: 1000 * meanOf(m.after, "workqueue_queue_duration_seconds", `name="rollout"`)},
		},
	}
	for _, method := range labelValues(m.after, "rest_client_requests_total", "method") {
		res.counters = append(res.counters, m.counter("API requests "+method+" (rest_client_requests_total)",
			"rest_client_requests_total", `method="`+method+`"`))
	}
	if *cpuProfile != "" {
		res.profileTop = profileTop(bin)
	}
	return res, nil
}

// deploymentsCaughtUp counts the Deployments that are paused and whose controller has seen
// their last change and counts their one pod available.
func deploymentsCaughtUp(ds []appsv1.Deployment) int {
	n := 0
	for _, d := range ds {
		st := d.Status
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Spec.Paused && st.ObservedGeneration >= d.Generation && st.Replicas == want && st.UpdatedReplicas == want && st.AvailableReplicas == want {
			n++
		}
	}
	return n
}

// createAll creates n Deployments of one pod and a Rollout of each, a few at a time.
func createAll(ctx context.Context, c client.Client, n int) error {
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				if err := createOne(ctx, c, fmt.Sprintf("svc-%04d", i)); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		select {
		case work <- i:
		case err := <-errs:
			close(work)
			wg.Wait()
			return err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func createOne(ctx context.Context, c client.Client, name string) error {
	one := int32(1)
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kubeNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "example.com/" + name + ":v1",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	if err := c.Create(ctx, d); err != nil {
		return fmt.Errorf("create Deployment %s: %w", name, err)
	}
	w := func(v int32) *int32 { return &v }
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kubeNamespace},
		Spec: v1alpha1.RolloutSpec{
			WorkloadRef: &v1alpha1.WorkloadRef{Name: name},
			Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
				{SetWeight: w(20)}, {Pause: &v1alpha1.RolloutPause{}}, {SetWeight: w(100)},
			}}},
		},
	}
	if err := c.Create(ctx, ro); err != nil {
		return fmt.Errorf("create Rollout %s: %w", name, err)
	}
	return nil
}

// meanOf is a histogram's mean: its _sum over its _count.
func meanOf(ss []sample, name string, labels ...string) float64 {
	n := sumMetric(ss, name+"_count", labels...)
	if n == 0 {
		return 0
	}
	return sumMetric(ss, name+"_sum", labels...) / n
}

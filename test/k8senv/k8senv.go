// Package k8senv runs a real Kubernetes control plane on loopback for tests: etcd,
// kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler and kwok with fake nodes, so
// Deployments create ReplicaSets whose pods are scheduled and become Ready without a kubelet.
//
// The binaries come from hack/k8s-control-plane.sh (`make k8s-bins`), which builds them once
// into a cache folder keyed by their versions; RAMP_K8S_BIN names another folder holding them.
//
//	env := k8senv.Start(t)                  // stopped at t.Cleanup
//	env.ApplyFiles(t, "test/k8s/crds/...")   // server-side apply of YAML
//	cfg, kubeconfig := env.KubeconfigFor(t, "ramp-controller")
package k8senv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "embed"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

//go:embed kwok-stages.yaml
var kwokStages []byte

// BinariesEnv names an environment variable that, when set, is the folder holding etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok.
const BinariesEnv = "RAMP_K8S_BIN"

// Binaries the control plane needs, all in one folder.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"}

// Options tune New and StartWith.
type Options struct {
	// Nodes is the number of fake kwok nodes; zero means 2.
	Nodes int
	// Dir holds data, certificates, kubeconfigs and component logs; empty means a new temporary
	// folder, removed by Stop.
	Dir string
}

// Env is a running control plane.
type Env struct {
	// Config authenticates as an administrator (group system:masters).
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file holding Config.
	Kubeconfig string
	// Client is a controller-runtime client for Config with client-go's scheme.
	Client client.Client
	// Clientset is a client-go clientset for Config.
	Clientset kubernetes.Interface
	// Dir holds data, certificates, kubeconfigs and the logs (<component>.log).
	Dir string
	// BinDir holds the control-plane binaries, kubectl among them.
	BinDir string
	// Nodes are the names of the fake nodes, all Ready.
	Nodes []string

	server    string
	ca        *authority
	procs     []*process // in start order
	removeDir bool
	stopped   bool
}

// Start starts a control plane for the test and stops it at cleanup, printing the components'
// logs first when the test failed. It fails the test when the control plane does not come up
// within 3 minutes.
func Start(t testing.TB) *Env { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	env, err := New(ctx, o)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Logf("control plane up in %s (logs in %s)", time.Since(start).Round(10*time.Millisecond), env.Dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control-plane logs:\n%s", env.Logs(50))
		}
		if err := env.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	return env
}

// BinDir returns the folder holding the control-plane binaries: $RAMP_K8S_BIN, or the cache
// folder of hack/k8s-control-plane.sh. It fails when a binary is missing.
func BinDir() (string, error) {
	dir := os.Getenv(BinariesEnv)
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", errors.New("cannot locate the k8senv source to find hack/k8s-control-plane.sh")
		}
		script := filepath.Join(filepath.Dir(file), "..", "..", "hack", "k8s-control-plane.sh")
		out, err := exec.Command(script, "--print").Output()
		if err != nil {
			return "", fmt.Errorf("run %s --print: %w", script, err)
		}
		dir = strings.TrimSpace(string(out))
	}
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("control-plane binary %s missing in %s: run `make k8s-bins` (hack/k8s-control-plane.sh) or set %s", b, dir, BinariesEnv)
		}
	}
	return dir, nil
}

// New starts a control plane. Callers without a testing.TB (TestMain) must call Stop.
// On error, everything started is stopped and the error carries the logs.
func New(ctx context.Context, o Options) (_ *Env, err error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	e := &Env{BinDir: bin, Dir: o.Dir}
	if e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "k8senv-"); err != nil {
			return nil, fmt.Errorf("make control-plane folder: %w", err)
		}
		e.removeDir = true
	}
	defer func() {
		if err != nil {
			logs := e.Logs(40)
			if stopErr := e.Stop(); stopErr != nil {
				err = fmt.Errorf("%w (and stopping: %v)", err, stopErr)
			}
			err = fmt.Errorf("%w\ncontrol-plane logs:\n%s", err, logs)
		}
	}()
	if err := e.start(ctx, o); err != nil {
		return e, err
	}
	return e, nil
}

func (e *Env) path(name string) string { return filepath.Join(e.Dir, name) }

func (e *Env) writeFile(name string, data []byte) (string, error) {
	p := e.path(name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return p, nil
}

func (e *Env) run(name string, args ...string) error {
	p, err := startProcess(e.Dir, filepath.Join(e.BinDir, name), name, args...)
	if err != nil {
		return err
	}
	e.procs = append(e.procs, p)
	return nil
}

func (e *Env) start(ctx context.Context, o Options) error {
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	e.server = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	// Certificates and keys.
	if e.ca, err = newAuthority(); err != nil {
		return err
	}
	caFile, err := e.writeFile("ca.crt", e.ca.certPEM)
	if err != nil {
		return err
	}
	srvCert, srvKey, err := e.ca.issue("kube-apiserver", nil,
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"})
	if err != nil {
		return err
	}
	srvCertFile, err := e.writeFile("apiserver.crt", srvCert)
	if err != nil {
		return err
	}
	srvKeyFile, err := e.writeFile("apiserver.key", srvKey)
	if err != nil {
		return err
	}
	saPriv, saPub, err := serviceAccountKey()
	if err != nil {
		return err
	}
	saKeyFile, err := e.writeFile("sa.key", saPriv)
	if err != nil {
		return err
	}
	saPubFile, err := e.writeFile("sa.pub", saPub)
	if err != nil {
		return err
	}
	stagesFile, err := e.writeFile("kwok-stages.yaml", kwokStages)
	if err != nil {
		return err
	}
	admin, adminKubeconfig, err := e.certConfig("admin", "admin", "system:masters")
	if err != nil {
		return err
	}
	e.Config, e.Kubeconfig = admin, adminKubeconfig
	if e.Clientset, err = kubernetes.NewForConfig(admin); err != nil {
		return fmt.Errorf("admin clientset: %w", err)
	}
	if e.Client, err = client.New(admin, client.Options{Scheme: scheme.Scheme}); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	// The components act with full rights under their own names, for readable audit and logs.
	_, kcmKubeconfig, err := e.certConfig("kube-controller-manager", "system:kube-controller-manager", "system:masters")
	if err != nil {
		return err
	}
	_, schedKubeconfig, err := e.certConfig("kube-scheduler", "system:kube-scheduler", "system:masters")
	if err != nil {
		return err
	}
	_, kwokKubeconfig, err := e.certConfig("kwok", "kwok", "system:masters")
	if err != nil {
		return err
	}

	// 1. etcd.
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	if err := e.run("etcd",
		"--name=default",
		"--data-dir="+e.path("etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := e.waitFor(ctx, "etcd healthy", func(ctx context.Context) error {
		return getOK(ctx, plain, etcdURL+"/health")
	}); err != nil {
		return err
	}

	// 2. kube-apiserver.
	if err := e.run("kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--endpoint-reconciler-type=none",
		"--tls-cert-file="+srvCertFile, "--tls-private-key-file="+srvKeyFile,
		"--client-ca-file="+caFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPubFile,
		"--service-account-signing-key-file="+saKeyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--cert-dir="+e.path("apiserver-certs"),
		"--v=1",
	); err != nil {
		return err
	}
	adminHTTP, err := rest.HTTPClientFor(admin)
	if err != nil {
		return fmt.Errorf("admin http client: %w", err)
	}
	if err := e.waitFor(ctx, "kube-apiserver ready", func(ctx context.Context) error {
		return getOK(ctx, adminHTTP, e.server+"/readyz")
	}); err != nil {
		return err
	}

	// 3-5. controller-manager, scheduler, kwok.
	if err := e.run("kube-controller-manager",
		"--kubeconfig="+kcmKubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+e.path("kcm-certs"),
		"--service-account-private-key-file="+saKeyFile,
		"--root-ca-file="+caFile,
		"--controllers=*",
		"--v=1",
	); err != nil {
		return err
	}
	if err := e.run("kube-scheduler",
		"--kubeconfig="+schedKubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+e.path("scheduler-certs"),
		"--v=1",
	); err != nil {
		return err
	}
	if err := e.run("kwok",
		"--kubeconfig="+kwokKubeconfig,
		"--config="+stagesFile,
		"--manage-all-nodes=true",
		"--server-address=127.0.0.1:"+strconv.Itoa(kwokPort),
		"--node-ip=10.1.0.1",
		"--cidr=10.2.0.0/16",
	); err != nil {
		return err
	}

	for i := range o.Nodes {
		name := "kwok-node-" + strconv.Itoa(i)
		if err := e.createNode(ctx, name); err != nil {
			return err
		}
		e.Nodes = append(e.Nodes, name)
	}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed healthz of a local test process
	}}
	waits := []struct {
		what string
		cond func(context.Context) error
	}{
		{"kube-controller-manager healthy", func(ctx context.Context) error {
			return getOK(ctx, insecure, "https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz")
		}},
		{"kube-scheduler healthy", func(ctx context.Context) error {
			return getOK(ctx, insecure, "https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz")
		}},
		{"fake nodes Ready", e.nodesReady},
		// The ServiceAccount controller runs in kube-controller-manager: proof it syncs.
		{"default ServiceAccount created", func(ctx context.Context) error {
			_, err := e.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			return err
		}},
	}
	for _, w := range waits {
		if err := e.waitFor(ctx, w.what, w.cond); err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) createNode(ctx context.Context, name string) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{
				"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	return e.waitFor(ctx, "create node "+name, func(ctx context.Context) error {
		_, err := e.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
}

func (e *Env) nodesReady(ctx context.Context) error {
	for _, name := range e.Nodes {
		n, err := e.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return fmt.Errorf("node %s not Ready yet", name)
		}
	}
	return nil
}

// waitFor polls cond until it returns nil, a component exits, or ctx ends; the error then names
// what was awaited and the last reason.
func (e *Env) waitFor(ctx context.Context, what string, cond func(context.Context) error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, p := range e.procs {
			if err := p.exited(); err != nil {
				return fmt.Errorf("wait for %s: %w", what, err)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cond(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if p := (permanent{}); errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func getOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// certConfig issues a client certificate for user in groups and returns a config and a
// kubeconfig file (<file>.kubeconfig in Dir) authenticating with it.
func (e *Env) certConfig(file, user string, groups ...string) (*rest.Config, string, error) {
	certPEM, keyPEM, err := e.ca.issue(user, groups, nil, nil)
	if err != nil {
		return nil, "", err
	}
	cfg := &rest.Config{
		Host: e.server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: e.ca.certPEM, CertData: certPEM, KeyData: keyPEM,
		},
		QPS: 100, Burst: 200,
	}
	path, err := e.writeKubeconfig(file, cfg)
	return cfg, path, err
}

// writeKubeconfig writes cfg (certificate or bearer-token auth) to <file>.kubeconfig in Dir.
func (e *Env) writeKubeconfig(file string, cfg *rest.Config) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["k8senv"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["k8senv"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
	}
	kc.Contexts["k8senv"] = &clientcmdapi.Context{Cluster: "k8senv", AuthInfo: "k8senv", Namespace: "default"}
	kc.CurrentContext = "k8senv"
	path := e.path(file + ".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return path, nil
}

// Stop stops the components in reverse start order (kwok first, etcd last), waiting for each,
// and removes Dir when New made it. It is safe to call twice.
func (e *Env) Stop() error {
	if e.stopped {
		return nil
	}
	e.stopped = true
	var errs []error
	for i := len(e.procs) - 1; i >= 0; i-- {
		if err := e.procs[i].stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if e.removeDir {
		if err := os.RemoveAll(e.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", e.Dir, err))
		}
	}
	return errors.Join(errs...)
}

// Logs returns the last lines lines of each component's log.
func (e *Env) Logs(lines int) string {
	var b strings.Builder
	for _, p := range e.procs {
		fmt.Fprintf(&b, "=== %s (%s)\n%s\n", p.name, p.logPath, p.tail(lines))
	}
	return b.String()
}

// Kubectl runs the control plane's kubectl as the administrator and returns its combined output.
func (e *Env) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "kubectl"), append([]string{"--kubeconfig=" + e.Kubeconfig, "--cache-dir=" + e.path("kubectl-cache")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Package charts tests ramp's Helm chart (charts/ramp) and its Grafana dashboard: helm lint, the
// rendered manifests against a golden file, the CRDs and RBAC against config/, and every PromQL
// expression of the dashboard against the series ramp exports.
package charts

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/prometheus/promql/parser"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/internal/local"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/rampmetrics"
)

var update = flag.Bool("update", false, "rewrite testdata/ramp.golden.yaml from helm template")

const chart = "ramp"

// helm returns the pinned helm that hack/helm.sh builds (once, into the cache).
func helm(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../hack/helm.sh").Output()
	if err != nil {
		t.Fatalf("hack/helm.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

func TestHelmLint(t *testing.T) {
	h := helm(t)
	run(t, h, "lint", "--strict", chart)
	run(t, h, "lint", "--strict", chart, "--set", "dashboard.enabled=true,metrics.serviceMonitor.enabled=true,controller.prometheusAddress=http://prometheus.monitoring:9090")
}

// goldenArgs render the chart with every optional part on, so that the golden file shows them.
var goldenArgs = []string{"template", "ramp", chart, "--namespace", "ramp-system",
	"--set", "dashboard.enabled=true,metrics.serviceMonitor.enabled=true,controller.prometheusAddress=http://prometheus.monitoring:9090",
	"--set", "controller.prometheusAuth.secretName=prometheus-auth,controller.prometheusAuth.username=ramp,controller.prometheusAuth.passwordKey=password,controller.prometheusAuth.caKey=ca.crt"}

func TestHelmTemplateGolden(t *testing.T) {
	got := run(t, helm(t), goldenArgs...)
	golden := filepath.Join("testdata", "ramp.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./charts -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("helm template differs from %s; if the change is meant, run go test ./charts -update and review the diff.\n%s", golden, firstDiff(string(want), string(got)))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n golden: " + x + "\n helm:   " + y
		}
	}
	return ""
}

// The rendered manifests hold what the issue asks of the controller's Deployment.
func TestDeploymentIsRestrictedAndHighlyAvailable(t *testing.T) {
	docs := renderDocs(t, run(t, helm(t), goldenArgs...))
	dep := find(t, docs, "Deployment")
	spec := dep["spec"].(map[string]any)
	if spec["replicas"] != float64(2) {
		t.Errorf("replicas %v, want 2", spec["replicas"])
	}
	pod := spec["template"].(map[string]any)["spec"].(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	args := strings.Join(toStrings(c["args"]), " ")
	for _, want := range []string{"--leader-elect=true", "--metrics-bind-address=:8080", "--log-level=info", "--judge-interval=10s", "--prometheus-address=http://prometheus.monitoring:9090"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	sc, _ := json.Marshal(c["securityContext"])
	psc, _ := json.Marshal(pod["securityContext"])
	for _, want := range []string{`"runAsNonRoot":true`, `"readOnlyRootFilesystem":true`, `"allowPrivilegeEscalation":false`, `"drop":["ALL"]`, `"seccompProfile":{"type":"RuntimeDefault"}`} {
		if !strings.Contains(string(sc), want) {
			t.Errorf("container securityContext %s lacks %s", sc, want)
		}
	}
	if !strings.Contains(string(psc), `"runAsNonRoot":true`) {
		t.Errorf("pod securityContext %s", psc)
	}
	if c["resources"] == nil {
		t.Error("no resources")
	}
	pdb := find(t, docs, "PodDisruptionBudget")
	if pdb["spec"].(map[string]any)["maxUnavailable"] != float64(1) {
		t.Errorf("PodDisruptionBudget %v", pdb["spec"])
	}
	for _, kind := range []string{"Service", "ServiceMonitor", "ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
		find(t, docs, kind)
	}
	// Off by default: the ServiceMonitor (its CRD may be missing) and the dashboard.
	def := renderDocs(t, run(t, helm(t), "template", "ramp", chart, "--namespace", "ramp-system"))
	for _, d := range def {
		if k := d["kind"]; k == "ServiceMonitor" || k == "ConfigMap" {
			t.Errorf("%s rendered with the default values", k)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func renderDocs(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for _, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(part), &m); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, part)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs
}

func find(t *testing.T, docs []map[string]any, kind string) map[string]any {
	t.Helper()
	for _, d := range docs {
		if d["kind"] == kind {
			return d
		}
	}
	t.Fatalf("no %s rendered", kind)
	return nil
}

// The chart's CRDs are config/crd/bases' (make generate copies them).
func TestCRDsMatchConfig(t *testing.T) {
	want, _ := filepath.Glob("../config/crd/bases/*.yaml")
	got, _ := filepath.Glob(chart + "/crds/*.yaml")
	base := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if len(want) == 0 || !slices.Equal(base(want), base(got)) {
		t.Fatalf("chart CRDs %v, config/crd/bases %v", base(got), base(want))
	}
	for _, p := range want {
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(filepath.Join(chart, "crds", filepath.Base(p)))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from config/crd/bases: run make generate", filepath.Base(p))
		}
	}
}

// The chart's ClusterRole grants exactly config/rbac/role.yaml's rules.
func TestClusterRoleMatchesConfig(t *testing.T) {
	data, err := os.ReadFile("../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(find(t, renderDocs(t, run(t, helm(t), goldenArgs...)), "ClusterRole"))
	var got rbacv1.ClusterRole
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(want.Rules) == 0 || !reflect.DeepEqual(got.Rules, want.Rules) {
		t.Fatalf("chart ClusterRole rules differ from config/rbac/role.yaml:\n got %v\nwant %v", got.Rules, want.Rules)
	}
}

func TestDashboardCopiesEqual(t *testing.T) {
	a, err := os.ReadFile(chart + "/dashboards/ramp.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../config/grafana/ramp.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("config/grafana/ramp.json differs from charts/ramp/dashboards/ramp.json: copy the chart's over it")
	}
}

// appSeries are the series the dashboard reads that ramp does not export; the README's
// dashboard section names each.
var appSeries = []string{"kube_pod_container_status_restarts_total"}

// exported collects the names of the series ramp exports: its own metrics (both modes), local
// mode's proxy and instance metrics, and the Go and process collectors.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 1000)
	rampmetrics.NewCollector(nil, nil).Describe(ch)
	proxy.New("x", proxy.Options{}).Collector().Describe(ch)
	local.DescribeInstanceMetrics(ch)
	collectors.NewGoCollector().Describe(ch)
	collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}).Describe(ch)
	close(ch)
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[m[1]] = true
		// Histograms are read through these.
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			names[m[1]+s] = true
		}
	}
	if !names["ramp_rollout_weight"] || !names["ramp_requests_total"] || !names["ramp_instance_restarts_total"] {
		t.Fatalf("exported names lack ramp's: %v", names)
	}
	return names
}

// grafanaVars replaces the dashboard's variables with values that parse.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "${datasource}", "", "$namespace", ".*", "$rollout", ".*")

type dashboard struct {
	Templating struct {
		List []struct {
			Name, Type string
			Query      any
		}
	}
	Annotations struct {
		List []struct {
			Name, Expr string
		}
	}
	Panels []struct {
		Title, Type string
		Targets     []struct{ Expr string }
	}
}

// Every PromQL expression of the dashboard parses with Prometheus's own parser and reads only
// series ramp exports or documented app series.
func TestDashboardQueries(t *testing.T) {
	data, err := os.ReadFile(chart + "/dashboards/ramp.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("ramp.json: %v", err)
	}
	type query struct{ where, expr string }
	var queries []query
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries = append(queries, query{"panel " + p.Title, tg.Expr})
		}
	}
	for _, a := range d.Annotations.List {
		queries = append(queries, query{"annotation " + a.Name, a.Expr})
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
			continue
		}
		queries = append(queries, query{"variable " + v.Name, m[1]})
	}
	if len(queries) < 20 {
		t.Fatalf("only %d queries found", len(queries))
	}
	names := exported(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range appSeries {
		names[s] = true
		if !bytes.Contains(readme, []byte(s)) {
			t.Errorf("app series %s is not documented in README.md", s)
		}
	}
	used := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for _, q := range queries {
		if strings.TrimSpace(q.expr) == "" {
			t.Errorf("%s: empty query", q.where)
			continue
		}
		expr, err := p.ParseExpr(grafanaVars.Replace(q.expr))
		if err != nil {
			t.Errorf("%s: %q: %v", q.where, q.expr, err)
			continue
		}
		n := 0
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			n++
			name := vs.Name
			if name == "" {
				t.Errorf("%s: %q selects series without a metric name", q.where, q.expr)
				return nil
			}
			used[name] = true
			if !names[name] {
				t.Errorf("%s: %q reads %s, which ramp does not export and is not a documented app series", q.where, q.expr, name)
			}
			return nil
		})
		if n == 0 {
			t.Errorf("%s: %q reads no series", q.where, q.expr)
		}
	}
	// The panels the issue asks for read these.
	for _, want := range []string{"ramp_requests_total", "ramp_request_duration_seconds_bucket", "ramp_time_to_first_token_seconds_bucket",
		"ramp_instance_restarts_total", "ramp_rollout_weight", "ramp_rollout_phase"} {
		if !used[want] {
			t.Errorf("no dashboard query reads %s", want)
		}
	}
}

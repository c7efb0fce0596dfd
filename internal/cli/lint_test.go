package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ramp.dev/ramp/internal/spec"
)

// kubeRollout is a valid Kubernetes-mode canary, with spec put under spec and canary under
// its canary strategy.
func kubeRollout(spec, canary string) string {
	return `apiVersion: ramp.dev/v1alpha1
kind: Rollout
metadata: {name: chat-api}
spec:
  workloadRef: {name: chat-api}
` + spec + `  strategy:
    canary:
      stableService: chat-api
      canaryService: chat-api-canary
` + canary + `      steps:
      - setWeight: 10
      - analysis: {templates: [{templateName: errors}]}
`
}

const localRollout = `apiVersion: ramp.dev/v1alpha1
kind: Rollout
metadata: {name: chat-local}
spec:
  template: {process: {command: chat-api}}
  strategy:
    canary:
      steps:
      - setWeight: 10
      - analysis: {templates: [{templateName: errors}]}
`

func template(provider string) string {
	return `apiVersion: ramp.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: errors}
spec:
  metrics:
  - name: errors
    successCondition: result < 0.01
    provider:
` + provider
}

const (
	promTemplate = "      prometheus: {address: http://prometheus:9090, query: up}\n"
	jobTemplate  = "      job: {image: busybox, command: [\"true\"]}\n"
	secretRef    = "      prometheus: {address: http://prometheus:9090, query: up, bearerTokenSecretRef: {name: prom, key: token}}\n"
)

// TestLintModes: lint tells each rollout's mode from its file and refuses, with its path,
// every field that mode cannot carry out; it checks template references across the files it
// is given, and a template in the mode of the rollouts that name it.
func TestLintModes(t *testing.T) {
	tests := []struct {
		name    string
		files   []string // file contents, linted together
		wantErr []string // lines of stderr, each as "FILE#: problem" with # the file's index
	}{
		{name: "kubernetes ok", files: []string{kubeRollout("", ""), template(promTemplate)}},
		{name: "local ok", files: []string{localRollout, template(promTemplate)}},
		{name: "proxy", files: []string{kubeRollout("  proxy: {upstreamProtocol: h2c}\n", ""), template(promTemplate)},
			wantErr: []string{"0: rollout/chat-api: spec.proxy: is the setting of ramp's own proxy, which only local mode has"}},
		{name: "proxy timeouts", files: []string{kubeRollout("  proxy: {timeouts: {firstByte: 30s}}\n", ""), template(promTemplate)},
			wantErr: []string{"0: rollout/chat-api: spec.proxy: is the setting of ramp's own proxy"}},
		{name: "trustedSources", files: []string{kubeRollout("", "      trafficRouting: {trustedSources: [10.0.0.0/8]}\n"), template(promTemplate)},
			wantErr: []string{"0: rollout/chat-api: spec.strategy.canary.trafficRouting.trustedSources: is read by ramp's own proxy"}},
		{name: "mirror", files: []string{kubeRollout("", "      mirror: {percentage: 5}\n"), template(promTemplate)},
			wantErr: []string{"0: spec.strategy.canary.mirror: cannot be done by the service (plain Service selectors) router"}},
		{name: "mirror with a router", files: []string{kubeRollout("", "      trafficRouting: {nginx: {stableIngress: chat}}\n      mirror: {percentage: 5}\n"), template(promTemplate)},
			wantErr: []string{"0: spec.strategy.canary.mirror: cannot be done by the nginx router"}},
		{name: "stickiness", files: []string{kubeRollout("", "      stickiness: {header: {name: x-user}}\n"), template(promTemplate)},
			wantErr: []string{"0: spec.strategy.canary.stickiness: cannot be done by the service"}},
		{name: "cookieMatch", files: []string{strings.Replace(kubeRollout("", "      trafficRouting: {istio: {virtualService: {name: chat}}, managedRoutes: [{name: v}]}\n"),
			"      - setWeight: 10\n", "      - setHeaderRoute: {name: v, cookieMatch: [{cookieName: v, cookieValue: {exact: \"2\"}}]}\n", 1), template(promTemplate)},
			wantErr: []string{"0: spec.strategy.canary.steps[0].setHeaderRoute.cookieMatch: cannot be done by the istio router, which cannot match cookies"}},
		{name: "header route without a router", files: []string{strings.Replace(kubeRollout("", "      trafficRouting: {managedRoutes: [{name: v}]}\n"),
			"      - setWeight: 10\n", "      - setHeaderRoute: {name: v, match: [{headerName: x-version, headerValue: {exact: \"2\"}}]}\n", 1), template(promTemplate)},
			wantErr: []string{"0: spec.strategy.canary.steps[0].setHeaderRoute: cannot be done by the service (plain Service selectors) router, which cannot route by header"}},
		{name: "process template", files: []string{kubeRollout("  template: {process: {command: chat-api}}\n", ""), template(promTemplate)},
			wantErr: []string{"0: spec.template: is set together with spec.workloadRef"}},
		{name: "listen", files: []string{kubeRollout("  listen: 127.0.0.1:8080\n", ""), template(promTemplate)},
			wantErr: []string{`0: spec.listen: "127.0.0.1:8080" is a local-mode address`}},
		{name: "command provider", files: []string{kubeRollout("", ""), template("      command: {command: ./check.sh}\n")},
			wantErr: []string{"1: analysistemplate/errors: spec.metrics[0].provider.command: runs a command beside local mode's processes; in Kubernetes mode use job"}},
		{name: "scrape provider", files: []string{kubeRollout("", ""), template("      scrape: {metric: chat_errors_total}\n")},
			wantErr: []string{"1: analysistemplate/errors: spec.metrics[0].provider.scrape: reads local mode's instances"}},
		{name: "job and Secret in kubernetes mode", files: []string{kubeRollout("", ""), template(jobTemplate), strings.Replace(template(secretRef), "name: errors}", "name: other}", 1)}},
		{name: "job in local mode", files: []string{localRollout, template(jobTemplate)},
			wantErr: []string{"1: analysistemplate/errors: spec.metrics[0].provider.job: the job provider needs Kubernetes mode; in local mode use command"}},
		{name: "notification Secrets in local mode", files: []string{localRollout + "  notifications:\n  - name: slack\n    type: slack\n    urlSecretRef: {name: hooks, key: slack}\n    headers: [{name: Authorization, valueSecretRef: {name: hooks, key: token}}]\n", template(promTemplate)},
			wantErr: []string{
				"0: rollout/chat-local: spec.notifications[0].urlSecretRef: a Kubernetes Secret cannot be read in local mode; use urlFile or urlEnv",
				"0: rollout/chat-local: spec.notifications[0].headers[0].valueSecretRef: a Kubernetes Secret cannot be read in local mode; use valueFile or valueEnv",
			}},
		{name: "notification Secrets in kubernetes mode", files: []string{kubeRollout("  notifications: [{name: slack, type: slack, urlSecretRef: {name: hooks, key: slack}}]\n", ""), template(promTemplate)}},
		{name: "Secret in local mode", files: []string{localRollout, template(secretRef)},
			wantErr: []string{"1: analysistemplate/errors: spec.metrics[0].provider.prometheus.bearerTokenSecretRef: a Kubernetes Secret cannot be read in local mode"}},
		{name: "router in local mode", files: []string{strings.Replace(localRollout, "    canary:\n", "    canary:\n      stableService: chat\n      canaryService: chat-canary\n      trafficRouting: {istio: {virtualService: {name: chat}}}\n", 1), template(promTemplate)},
			wantErr: []string{
				"0: rollout/chat-local: spec.strategy.canary.trafficRouting.istio: needs Kubernetes mode",
				`0: rollout/chat-local: spec.strategy.canary.stableService: "chat" names a Kubernetes Service`,
				`0: rollout/chat-local: spec.strategy.canary.canaryService: "chat-canary" names a Kubernetes Service`,
			}},
		{name: "missing template", files: []string{kubeRollout("", "")},
			wantErr: []string{`0: spec.strategy.canary.steps[1].analysis.templates[0].templateName: "errors" names no AnalysisTemplate`}},
		{name: "template in a third file", files: []string{kubeRollout("", ""), strings.Replace(template(promTemplate), "name: errors}", "name: other}", 1), template(promTemplate)}},
		{name: "missing among several files", files: []string{kubeRollout("", ""), strings.Replace(template(promTemplate), "name: errors}", "name: other}", 1)},
			wantErr: []string{`0: spec.strategy.canary.steps[1].analysis.templates[0].templateName: "errors" names no AnalysisTemplate`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var args, names []string
			for i, content := range tt.files {
				name := filepath.Join(dir, string(rune('a'+i))+".yaml")
				if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-f", name)
				names = append(names, name)
			}
			h := &harness{stateDir: t.TempDir(), load: spec.Load}
			code, out, errOut := h.run(t, append([]string{"lint"}, args...)...)
			if len(tt.wantErr) == 0 {
				if code != 0 || errOut != "" {
					t.Fatalf("code %d, stderr:\n%s", code, errOut)
				}
				return
			}
			if code != 1 {
				t.Errorf("code %d, want 1 (stdout %q)", code, out)
			}
			for _, w := range tt.wantErr {
				i := int(w[0] - '0')
				want := "error: " + names[i] + ": " + w[3:]
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if n := strings.Count(errOut, "error: "); n != len(tt.wantErr) {
				t.Errorf("%d problems, want %d:\n%s", n, len(tt.wantErr), errOut)
			}
		})
	}
}

// TestLintExamples: every ramp file under examples/ lints clean, all of them together (a
// rollout's templates may be in another file).
func TestLintExamples(t *testing.T) {
	var args []string
	err := filepath.WalkDir("../../examples", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), "apiVersion: ramp.dev/") {
			args = append(args, "-f", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(args) == 0 {
		t.Fatal("no ramp files under examples/")
	}
	h := &harness{stateDir: t.TempDir(), load: spec.Load}
	code, out, errOut := h.run(t, append([]string{"lint"}, args...)...)
	if code != 0 {
		t.Fatalf("lint %v: code %d\n%s%s", args, code, out, errOut)
	}
	if n := strings.Count(out, ": ok\n"); n != len(args)/2 {
		t.Errorf("%d files ok, want %d:\n%s", n, len(args)/2, out)
	}
}

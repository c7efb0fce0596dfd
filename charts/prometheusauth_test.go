package charts

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestPrometheusAuthAndAPILimits: controller.prometheusAuth becomes the controller's
// --prometheus-* flags over a Secret mounted at /etc/ramp/prometheus, kubeAPIQPS and
// kubeAPIBurst its --kube-api-* flags, and a key without a Secret is refused.
func TestPrometheusAuthAndAPILimits(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct {
		name   string
		set    string
		args   []string // wanted among the args
		absent []string // prefixes of args that must not be there
		secret string   // the mounted Secret; empty means no volume
	}{
		{name: "defaults", args: []string{"--kube-api-qps=50", "--kube-api-burst=100"}, absent: []string{"--prometheus-"}},
		{name: "bearer token", set: "controller.prometheusAuth.secretName=prom,controller.prometheusAuth.bearerTokenKey=token,controller.kubeAPIQPS=20,controller.kubeAPIBurst=30",
			args: []string{"--prometheus-bearer-token-file=/etc/ramp/prometheus/token", "--kube-api-qps=20", "--kube-api-burst=30"}, absent: []string{"--prometheus-username", "--prometheus-ca-file"}, secret: "prom"},
		{name: "basic auth and a CA", set: "controller.prometheusAuth.secretName=prom,controller.prometheusAuth.username=ramp,controller.prometheusAuth.passwordKey=pw,controller.prometheusAuth.caKey=ca.crt",
			args: []string{"--prometheus-username=ramp", "--prometheus-password-file=/etc/ramp/prometheus/pw", "--prometheus-ca-file=/etc/ramp/prometheus/ca.crt"}, absent: []string{"--prometheus-bearer-token-file", "--prometheus-insecure-skip-verify"}, secret: "prom"},
		{name: "SigV4 needs no Secret", set: "controller.prometheusAuth.sigv4Region=eu-west-1,controller.prometheusAuth.insecureSkipVerify=true",
			args: []string{"--prometheus-sigv4-region=eu-west-1", "--prometheus-insecure-skip-verify"}, absent: []string{"--prometheus-username"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv := []string{"template", "ramp", chart, "--namespace", "ramp-system"}
			if tc.set != "" {
				argv = append(argv, "--set", tc.set)
			}
			dep := find(t, renderDocs(t, run(t, h, argv...)), "Deployment")
			pod := dep["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
			c := pod["containers"].([]any)[0].(map[string]any)
			args := toStrings(c["args"])
			for _, want := range tc.args {
				if !slices.Contains(args, want) {
					t.Errorf("args %q lack %s", args, want)
				}
			}
			for _, a := range args {
				for _, p := range tc.absent {
					if strings.HasPrefix(a, p) {
						t.Errorf("args hold %s", a)
					}
				}
			}
			mounts, _ := json.Marshal(c["volumeMounts"])
			volumes, _ := json.Marshal(pod["volumes"])
			if tc.secret == "" {
				if c["volumeMounts"] != nil || pod["volumes"] != nil {
					t.Errorf("volumes %s, mounts %s; want none", volumes, mounts)
				}
				return
			}
			if !strings.Contains(string(mounts), `"mountPath":"/etc/ramp/prometheus"`) || !strings.Contains(string(mounts), `"readOnly":true`) ||
				!strings.Contains(string(volumes), `"secretName":"`+tc.secret+`"`) {
				t.Errorf("volumes %s, mounts %s; want Secret %s read-only at /etc/ramp/prometheus", volumes, mounts, tc.secret)
			}
		})
	}
	t.Run("a key without a Secret", func(t *testing.T) {
		out, err := exec.Command(h, "template", "ramp", chart, "--set", "controller.prometheusAuth.passwordKey=pw,controller.prometheusAuth.username=ramp").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "controller.prometheusAuth.secretName: is empty, but bearerTokenKey, passwordKey or caKey name a key of it") {
			t.Errorf("helm template: %v\n%s", err, out)
		}
	})
}

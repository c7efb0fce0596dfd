package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"ramp.dev/ramp/internal/spec"
)

// TestLintChatAPIKubernetesExamples: `ramp lint` of every ramp file of
// examples/chat-api/kubernetes/ together (its Rollouts, one per strategy, and the
// AnalysisTemplates they name) is clean, in Kubernetes mode (told from spec.workloadRef). The
// folder's other files are Kubernetes objects (Namespace, Deployment, Services...), which
// `kubectl apply` takes and lint does not.
func TestLintChatAPIKubernetesExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "chat-api", "kubernetes")
	var files []string
	strategies := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") || strings.Contains(p, "prometheus") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !regexp.MustCompile(`(?m)^apiVersion: ramp\.dev/`).Match(data) {
			return nil
		}
		files = append(files, p)
		for _, m := range regexp.MustCompile(`(?m)^    (rollingUpdate|canary|blueGreen):`).FindAllSubmatch(data, -1) {
			strategies[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 || len(strategies) != 3 {
		t.Fatalf("ramp files %v with strategies %v; want the AnalysisTemplates and a Rollout per strategy", files, strategies)
	}
	args := []string{"lint"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	h := &harness{stateDir: t.TempDir(), load: spec.Load}
	code, out, errOut := h.run(t, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("ramp %s: code %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	var ok []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		ok = append(ok, strings.TrimSuffix(l, ": ok"))
	}
	slices.Sort(ok)
	slices.Sort(files)
	if !slices.Equal(ok, files) {
		t.Errorf("lint said ok for %v; want every file %v", ok, files)
	}
}

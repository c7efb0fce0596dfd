package engine

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the architecture honest: the engine does no I/O, and the engine, the
// analysis runner and the proxy never depend on Kubernetes client libraries.
func TestLayering(t *testing.T) {
	list := func(format string, pkgs ...string) []string {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list", "-f", format}, pkgs...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %s\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	for _, imp := range list(`{{join .Imports " "}}`, "ramp.dev/ramp/internal/engine") {
		switch imp {
		case "net/http", "os/exec", "os", "net":
			t.Errorf("internal/engine imports %s; the engine must stay free of I/O", imp)
		}
	}
	for _, pkg := range []string{"ramp.dev/ramp/internal/engine", "ramp.dev/ramp/internal/analysis/...", "ramp.dev/ramp/internal/proxy"} {
		for _, dep := range list(`{{join .Deps " "}}`, pkg) {
			if strings.HasPrefix(dep, "k8s.io/client-go") || strings.HasPrefix(dep, "sigs.k8s.io/controller-runtime") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}

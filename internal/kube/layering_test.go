package kube

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoLocalStore keeps Kubernetes mode off local mode's database: the wire and history
// types it shares with local mode live in internal/control, so neither internal/kube nor the
// control contract links bbolt or internal/store.
func TestNoLocalStore(t *testing.T) {
	for _, pkg := range []string{"ramp.dev/ramp/internal/kube", "ramp.dev/ramp/internal/control"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %s\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 2 {
			t.Fatalf("go list -deps %s listed %q; want its dependencies", pkg, deps)
		}
		for _, dep := range deps {
			if strings.HasPrefix(dep, "go.etcd.io/bbolt") || dep == "ramp.dev/ramp/internal/store" {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}

package engine

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// importGraph is each package's direct imports, for a package and everything it depends on.
type importGraph map[string][]string

// goList reads the import graph of pkgs and all their dependencies with `go list -deps`.
func goList(t *testing.T, pkgs ...string) importGraph {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json=ImportPath,Imports"}, pkgs...)...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %s\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %s", err)
	}
	g := importGraph{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %s", err)
		}
		g[p.ImportPath] = p.Imports
	}
	return g
}

// paths finds, for each package reachable from root that bad matches, one import path to it
// ("a -> b -> c"). A package that through matches is not gone through (nor reported).
func (g importGraph) paths(root string, bad, through func(string) bool) []string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	var found []string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && bad(p) {
			chain := []string{p}
			for q := parent[p]; q != ""; q = parent[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			found = append(found, strings.Join(chain, " -> "))
		}
		if p != root && through != nil && through(p) {
			continue
		}
		for _, imp := range g[p] {
			if _, seen := parent[imp]; !seen {
				parent[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	slices.Sort(found)
	return found
}

func hasPrefix(prefixes ...string) func(string) bool {
	return func(p string) bool {
		for _, pre := range prefixes {
			if p == pre || strings.HasPrefix(p, pre+"/") {
				return true
			}
		}
		return false
	}
}

const enginePkg = "ramp.dev/ramp/internal/engine"

// kubeClients are the Kubernetes client libraries, which do I/O against an API server.
var kubeClients = hasPrefix("k8s.io/client-go", "sigs.k8s.io/controller-runtime")

// engineRules are what the engine must not depend on, by any path of imports (a failure
// names one such path). The engine may use only the API types and spec of ramp's own
// packages: an adapter's rules (kube, local, the driver, the store) never flow into it.
var engineRules = []struct {
	what    string
	bad     func(string) bool
	through func(string) bool
}{
	{"a Kubernetes client", kubeClients, nil},
	{"the embedded database", hasPrefix("go.etcd.io/bbolt"), nil},
	{"a package that runs processes", hasPrefix("os/exec"), nil},
	{"a ramp package other than the API types and spec", func(p string) bool {
		return hasPrefix("ramp.dev/ramp")(p) && !hasPrefix("ramp.dev/ramp/api", "ramp.dev/ramp/internal/spec", enginePkg)(p)
	}, nil},
	// The API types' library (k8s.io/apimachinery) links an HTTP stack for its own helpers,
	// which the engine never calls; no other path may.
	{"net/http other than through k8s.io/apimachinery", hasPrefix("net/http"), hasPrefix("k8s.io/apimachinery")},
}

// TestLayering keeps the architecture honest: the engine does no I/O and depends on no
// adapter, by any path; the analysis runner and the proxy never depend on Kubernetes client
// libraries.
func TestLayering(t *testing.T) {
	g := goList(t, enginePkg)
	for _, rule := range engineRules {
		for _, p := range g.paths(enginePkg, rule.bad, rule.through) {
			t.Errorf("internal/engine depends on %s: %s", rule.what, p)
		}
	}
	// ramp's own packages in the engine's closure do no I/O either (the standard library's
	// fmt uses os, so os is checked on direct imports only).
	for pkg, imps := range g {
		if !hasPrefix("ramp.dev/ramp")(pkg) {
			continue
		}
		for _, imp := range imps {
			switch {
			case imp == "os" || imp == "os/exec" || hasPrefix("net/http")(imp):
				t.Errorf("%s, a dependency of internal/engine, imports %s", pkg, imp)
			case imp == "net" && pkg == enginePkg:
				t.Errorf("internal/engine imports net; the engine must stay free of I/O")
			}
		}
	}
	for _, root := range []string{"ramp.dev/ramp/internal/analysis/...", "ramp.dev/ramp/internal/proxy"} {
		g := goList(t, root)
		for pkg := range g {
			if !strings.HasPrefix(pkg, strings.TrimSuffix(root, "/...")) {
				continue
			}
			for _, p := range g.paths(pkg, kubeClients, nil) {
				t.Errorf("%s depends on a Kubernetes client: %s", pkg, p)
			}
		}
	}
}

// The rules find a forbidden package at any depth, and name the path to it.
func TestLayeringRulesSeeTransitiveImports(t *testing.T) {
	g := importGraph{
		enginePkg:                              {"ramp.dev/ramp/internal/spec", "k8s.io/apimachinery/pkg/apis/meta/v1"},
		"ramp.dev/ramp/internal/spec":          {"example.com/lib"},
		"example.com/lib":                      {"ramp.dev/ramp/internal/kube"},
		"ramp.dev/ramp/internal/kube":          {"sigs.k8s.io/controller-runtime/pkg/client", "go.etcd.io/bbolt"},
		"k8s.io/apimachinery/pkg/apis/meta/v1": {"k8s.io/apimachinery/pkg/util/net"},
		"k8s.io/apimachinery/pkg/util/net":     {"net/http"},
	}
	var got []string
	for _, rule := range engineRules {
		got = append(got, g.paths(enginePkg, rule.bad, rule.through)...)
	}
	want := []string{
		enginePkg + " -> ramp.dev/ramp/internal/spec -> example.com/lib -> ramp.dev/ramp/internal/kube -> sigs.k8s.io/controller-runtime/pkg/client",
		enginePkg + " -> ramp.dev/ramp/internal/spec -> example.com/lib -> ramp.dev/ramp/internal/kube -> go.etcd.io/bbolt",
		enginePkg + " -> ramp.dev/ramp/internal/spec -> example.com/lib -> ramp.dev/ramp/internal/kube",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paths found:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// net/http other than through the API types' library is found too.
	g["example.com/lib"] = append(g["example.com/lib"], "net/http")
	if p := g.paths(enginePkg, engineRules[4].bad, engineRules[4].through); len(p) != 1 || !strings.HasSuffix(p[0], "example.com/lib -> net/http") {
		t.Fatalf("net/http paths %q", p)
	}
}

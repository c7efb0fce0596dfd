package k8senv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// FieldManager is the server-side-apply field manager of Apply and ApplyFiles.
const FieldManager = "k8senv"

var crdKind = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}

// ApplyFiles applies every object in the given YAML files, and in the *.yaml and *.yml files of
// the given folders (by name), in order. It fails the test on the first error.
func (e *Env) ApplyFiles(t testing.TB, paths ...string) []*unstructured.Unstructured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var all []*unstructured.Unstructured
	for _, p := range paths {
		files, err := yamlFiles(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatalf("read %s: %v", f, err)
			}
			objs, err := e.Apply(ctx, data)
			if err != nil {
				t.Fatalf("apply %s: %v", f, err)
			}
			all = append(all, objs...)
		}
	}
	return all
}

func yamlFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	var files []string
	for _, en := range entries {
		if !en.IsDir() && (strings.HasSuffix(en.Name(), ".yaml") || strings.HasSuffix(en.Name(), ".yml")) {
			files = append(files, filepath.Join(path, en.Name()))
		}
	}
	slices.Sort(files)
	return files, nil
}

// Apply server-side applies each object of a (multi-document) YAML stream as FieldManager,
// forcing ownership, and returns the objects it decoded. Objects of namespaced kinds
// without a namespace go to "default". After a CustomResourceDefinition it waits until the CRD
// is Established, so later documents may use its kind.
func (e *Env) Apply(ctx context.Context, data []byte) ([]*unstructured.Unstructured, error) {
	objs, err := decodeYAML(data)
	if err != nil {
		return nil, err
	}
	for _, u := range objs {
		if err := e.applyOne(ctx, u); err != nil {
			return nil, err
		}
		if u.GroupVersionKind().GroupKind() == crdKind {
			if err := e.waitEstablished(ctx, u.GetName()); err != nil {
				return nil, err
			}
		}
	}
	return objs, nil
}

func decodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read YAML document %d: %w", i, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("parse YAML document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("YAML document %d: apiVersion and kind are required", i)
		}
		objs = append(objs, u)
	}
}

func (e *Env) applyOne(ctx context.Context, u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	what := fmt.Sprintf("%s %s", gvk.Kind, u.GetName())
	// Discovery of a just-established CRD can lag a moment: retry while the kind is unknown.
	return e.waitFor(ctx, "apply "+what, func(ctx context.Context) error {
		m, err := e.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return err
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace && u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		err = e.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership)
		if err != nil && !meta.IsNoMatchError(err) {
			return permanent{fmt.Errorf("apply %s: %w", what, err)}
		}
		return err
	})
}

// permanent marks an error that waitFor returns at once instead of retrying.
type permanent struct{ error }

func (e *Env) waitEstablished(ctx context.Context, name string) error {
	return e.waitFor(ctx, "CRD "+name+" Established", func(ctx context.Context) error {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdKind.WithVersion("v1"))
		if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return errors.New("not Established yet")
	})
}

package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that Load never panics and that what it accepts re-validates clean.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob("testdata/valid-*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(rollout(okProcess + "  strategy: {canary: {steps: [{setWeight: 150}]}}\n")))
	f.Add([]byte(template("  metrics: [{name: a, successCondition: result > baseline, provider: {builtin: {metric: cpu}}}]\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Load(data)
		if err != nil {
			if b != nil {
				t.Fatal("Load returned a bundle with an error")
			}
			return
		}
		revalidate(t, b)
	})
}

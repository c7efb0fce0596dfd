package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	for _, c := range invalidCases {
		f.Add([]byte(c.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Load(data)
		if err != nil {
			if b != nil {
				t.Fatal("Load returned a bundle with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Load error is %T %v, want a non-empty Errors", err, err)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(errs) {
				t.Fatalf("%d problems on %d lines:\n%s", len(errs), n, err)
			}
			return
		}
		revalidate(t, b)
	})
}

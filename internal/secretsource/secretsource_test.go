package secretsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ramp.dev/ramp/api/v1alpha1"
)

type secrets map[string]string

func (s secrets) SecretValue(_ context.Context, namespace, name, key string) ([]byte, error) {
	v, ok := s[namespace+"/"+name+"/"+key]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s has no key %q", namespace, name, key)
	}
	return []byte(v), nil
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file, empty := filepath.Join(dir, "token"), filepath.Join(dir, "empty")
	os.WriteFile(file, []byte(" s3cret\n"), 0o600)
	os.WriteFile(empty, nil, 0o600)
	t.Setenv("RAMP_TEST_TOKEN", "from-env")
	t.Setenv("RAMP_TEST_UNSET", "")
	ref := &v1alpha1.SecretKeyRef{Name: "hooks", Key: "url"}
	sec := secrets{"shop/hooks/url": "https://hooks.example/x\n", "shop/hooks/blank": " "}
	flag := func(f string) string { return "--" + f }
	for _, tc := range []struct {
		name              string
		secrets           Reader
		names             func(string) string
		inline, file, env string
		ref               *v1alpha1.SecretKeyRef
		want, wantErr     string
		wantOK            bool
	}{
		{name: "none"},
		{name: "inline first", inline: "x", file: file, want: "x", wantOK: true},
		{name: "file, trimmed", file: file, want: "s3cret", wantOK: true},
		{name: "empty file", file: empty, wantErr: "tokenFile: " + empty + " is empty"},
		{name: "missing file, named as the caller names it", names: flag, file: filepath.Join(dir, "nope"), wantErr: "--tokenFile: open "},
		{name: "env", env: "RAMP_TEST_TOKEN", want: "from-env", wantOK: true},
		{name: "env unset", env: "RAMP_TEST_UNSET", wantErr: "tokenEnv: the environment variable RAMP_TEST_UNSET is not set"},
		{name: "secret", secrets: sec, ref: ref, want: "https://hooks.example/x", wantOK: true},
		{name: "blank secret", secrets: sec, ref: &v1alpha1.SecretKeyRef{Name: "hooks", Key: "blank"}, wantErr: `tokenSecretRef: key "blank" of secret shop/hooks is empty`},
		{name: "secret in local mode", ref: ref, wantErr: "tokenSecretRef: a Kubernetes Secret cannot be read in local mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ok, err := Sources{Secrets: tc.secrets, Namespace: "shop", Name: tc.names}.Read(context.Background(), "token", tc.inline, tc.file, tc.env, tc.ref)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the value: %v", err)
				}
				return
			}
			if err != nil || v != tc.want || ok != tc.wantOK {
				t.Errorf("got %q %v %v, want %q %v", v, ok, err, tc.want, tc.wantOK)
			}
		})
	}
}

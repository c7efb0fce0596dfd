package local

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/store"
)

// TestApplyRefusesSecretRefs: local mode cannot read a Kubernetes Secret, so Apply refuses a
// template that references one, naming the field and the forms local mode reads instead.
func TestApplyRefusesSecretRefs(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := newController(deps{store: st})
	t.Cleanup(c.proxies.shutdown)
	t.Cleanup(c.measure.Close)
	for _, tt := range []struct{ name, access, want string }{
		{name: "password", access: "basicAuth: {username: ramp, passwordSecretRef: {name: prom, key: password}}",
			want: "analysistemplate/errors: spec.metrics[0].provider.prometheus.basicAuth.passwordSecretRef: a Kubernetes Secret cannot be read in local mode; use basicAuth.passwordFile or basicAuth.passwordEnv"},
		{name: "CA", access: "tlsConfig: {caSecretRef: {name: prom-tls, key: ca.crt}}",
			want: "analysistemplate/errors: spec.metrics[0].provider.prometheus.tlsConfig.caSecretRef: a Kubernetes Secret cannot be read in local mode; use tlsConfig.caFile or tlsConfig.ca"},
		{name: "bearer token", access: "bearerTokenSecretRef: {name: prom, key: token}",
			want: "analysistemplate/errors: spec.metrics[0].provider.prometheus.bearerTokenSecretRef: a Kubernetes Secret cannot be read in local mode; use bearerTokenFile or bearerTokenEnv"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := spec.Load([]byte(`apiVersion: ramp.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: errors}
spec:
  metrics:
    - name: errors
      provider:
        prometheus:
          address: https://prometheus:9090
          query: up
          ` + tt.access + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ApplyBundle(context.Background(), b)
			if !errors.Is(err, control.ErrInvalid) || err.Error() != control.ErrInvalid.Error()+": "+tt.want {
				t.Fatalf("Apply: %v, want %q", err, tt.want)
			}
			if _, err := st.GetAnalysisTemplate("errors"); err == nil {
				t.Error("the template was stored")
			}
		})
	}
}

package local

import (
	"testing"

	"ramp.dev/ramp/internal/spec"
)

// TestApplyRefusesSecretRefs: local mode cannot read a Kubernetes Secret, so Apply refuses a
// template that references one, naming the field and the forms local mode reads instead.
func TestApplyRefusesSecretRefs(t *testing.T) {
	c, st := storedController(t)
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
			wantRefused(t, c, b, tt.want, func() error { _, err := st.GetAnalysisTemplate("errors"); return err })
		})
	}
}

package kube

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	promprovider "ramp.dev/ramp/internal/analysis/prometheus"
	"ramp.dev/ramp/internal/driver"
)

func promSecret(password string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "prom-auth", Namespace: ns},
		Data:       map[string][]byte{"username": []byte("ramp"), "password": []byte(password + "\n")},
	}
}

// TestSecretReader reads keys of Secrets through controller-runtime's fake client (not a real
// API server); its errors name the Secret and key, never a value.
func TestSecretReader(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(promSecret("pa55")).Build()
	r := secretReader{c: c}
	tests := []struct {
		name, secret, key string
		want, wantErr     string
	}{
		{name: "a key", secret: "prom-auth", key: "password", want: "pa55\n"},
		{name: "a missing key", secret: "prom-auth", key: "pasword", wantErr: `secret team/prom-auth has no key "pasword" (its keys: password, username)`},
		{name: "a missing Secret", secret: "nope", key: "password", wantErr: "secret team/nope not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := r.SecretValue(context.Background(), ns, tt.secret, tt.key)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(v) != tt.want {
				t.Fatalf("got %q, %v; want %q", v, err, tt.want)
			}
		})
	}
}

// TestAnalysisReadsSecretRefs runs a prometheus metric whose password is a Secret reference
// through the reconciler's analysis: the reconciler hands its Secret reader to the provider,
// which reads the Secret (fake client) in the rollout's namespace. The Prometheus API here is
// a stand-in that checks the password; internal/analysis/prometheus tests a real one.
func TestAnalysisReadsSecretRefs(t *testing.T) {
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ramp" || p != "pa55" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"7"]}]}}`)
	}))
	defer prom.Close()
	tmpl := &v1alpha1.AnalysisTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "prom", Namespace: ns},
		Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{
			Name: "m", SuccessCondition: "result == 7",
			Provider: v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusMetric{Address: prom.URL, Query: "up",
				BasicAuth: &v1alpha1.PrometheusBasicAuth{UsernameSecretRef: &v1alpha1.SecretKeyRef{Name: "prom-auth", Key: "username"},
					PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "prom-auth", Key: "password"}}}},
		}}},
	}
	for _, tt := range []struct {
		name, password string
		want           v1alpha1.AnalysisPhase
		wantMsg        string
	}{
		{name: "the right password", password: "pa55", want: v1alpha1.AnalysisSuccessful},
		{name: "a wrong password", password: "wrong", want: v1alpha1.AnalysisError, wantMsg: "the basicAuth user name and password were refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(promSecret(tt.password), tmpl.DeepCopy()).Build()
			r := NewReconciler(c, events.NewFakeRecorder(10), ReconcilerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Providers: map[string]analysis.Provider{"prometheus": promprovider.New(nil)}})
			defer r.Close()
			ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns}}
			ro.Status.Analysis = []v1alpha1.AnalysisRunStatus{{Name: "a1", Kind: v1alpha1.AnalysisKindStep, Revision: 2,
				Spec: v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "prom"}}}}}
			measured := func() *v1alpha1.MetricResult {
				for i := range ro.Status.Analysis[0].Metrics {
					if m := &ro.Status.Analysis[0].Metrics[i]; len(m.Measurements) > 0 {
						return m
					}
				}
				return nil
			}
			deadline := time.After(20 * time.Second)
			for measured() == nil {
				driver.RunAnalysis(context.Background(), &mode{r: r}, time.Now(), ro)
				if measured() != nil {
					break
				}
				select {
				case <-r.measure.events: // a measurement ended
				case <-deadline:
					t.Fatalf("no measurement within 20s: %+v", ro.Status.Analysis[0])
				}
			}
			m := measured()
			if m.Measurements[0].Phase != tt.want || !strings.Contains(m.Message+m.Measurements[0].Message, tt.wantMsg) {
				t.Errorf("measured %+v, want %s with %q", m, tt.want, tt.wantMsg)
			}
			if strings.Contains(m.Message+m.Measurements[0].Message, tt.password) {
				t.Errorf("the status shows the password: %+v", m)
			}
		})
	}
}

package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

func TestMeasure(t *testing.T) {
	type seen struct{ method, path, body, auth, ctype string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- seen{r.Method, r.URL.RequestURI(), string(b), r.Header.Get("Authorization"), r.Header.Get("Content-Type")}:
		default:
		}
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"data": {"errorRate": 0.25, "ok": true, "bad": false, "text": "0.5", "word": "high", "none": null, "list": [1, 2], "obj": {"a": 1}}}`)
		case "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "overloaded\n")
		case "/html":
			io.WriteString(w, "<html>hi</html>")
		}
	}))
	defer srv.Close()

	web := func(f func(w *v1alpha1.WebMetric)) v1alpha1.Metric {
		w := &v1alpha1.WebMetric{URL: srv.URL + "/ok", JSONPath: "$.data.errorRate"}
		f(w)
		return v1alpha1.Metric{Name: "m", Provider: v1alpha1.MetricProvider{Web: w}}
	}
	target := analysis.Target{Rollout: "chat-api", Revision: 3, Role: "canary", Args: map[string]string{"token": "s3cret", "service-name": "chat"}}
	tests := []struct {
		name             string
		m                v1alpha1.Metric
		want             float64
		wantText         string
		wantInconclusive bool
		wantErr          string
		wantSeen         *seen
	}{
		{name: "number", m: web(func(*v1alpha1.WebMetric) {}), want: 0.25,
			wantSeen: &seen{method: "GET", path: "/ok"}},
		{name: "argo braces", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "{$.data.errorRate}" }), want: 0.25},
		{name: "true is 1", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.data.ok" }), want: 1, wantText: "1 (true)"},
		{name: "false is 0", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.data.bad" }), want: 0, wantText: "0 (false)"},
		{name: "numeric string", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.data.text" }), want: 0.5},
		{name: "null is no data", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.data.none" }), wantInconclusive: true,
			wantText: `no data (jsonPath "$.data.none" is null)`},
		{name: "post with templated body, url and header",
			m: web(func(w *v1alpha1.WebMetric) {
				w.Method = "POST"
				w.URL = srv.URL + "/ok?svc={{args.service-name}}"
				w.Body = `{"rollout": "{{rollout}}", "revision": {{ revision }}, "role": "{{role}}"}`
				w.Headers = []v1alpha1.WebMetricHeader{{Key: "Authorization", Value: "Bearer {{args.token}}"}}
			}),
			want:     0.25,
			wantSeen: &seen{method: "POST", path: "/ok?svc=chat", body: `{"rollout": "chat-api", "revision": 3, "role": "canary"}`, auth: "Bearer s3cret", ctype: "application/json"}},
		{name: "word is not a number", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.data.word" }),
			wantErr: `jsonPath "$.data.word" selects "high", not a number`},
		{name: "object is not a number", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.data.obj" }),
			wantErr: `jsonPath "$.data.obj" selects {"a":1}, not a number`},
		{name: "more than one value", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.data.list[*]" }),
			wantErr: `jsonPath "$.data.list[*]" selects 2 values, want one`},
		{name: "nothing selected", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.data.missing" }),
			wantErr: `jsonPath "$.data.missing" selects nothing in {"data"`},
		{name: "non-2xx", m: web(func(w *v1alpha1.WebMetric) { w.URL = srv.URL + "/fail" }),
			wantErr: "GET " + srv.URL + "/fail: status 503: overloaded"},
		{name: "not JSON", m: web(func(w *v1alpha1.WebMetric) { w.URL = srv.URL + "/html" }),
			wantErr: "answer is not JSON"},
		{name: "bad path", m: web(func(w *v1alpha1.WebMetric) { w.JSONPath = "$.[" }),
			wantErr: `parse JSONPath "$.["`},
		{name: "unknown variable", m: web(func(w *v1alpha1.WebMetric) { w.URL = srv.URL + "/{{version}}" }),
			wantErr: "url: template: unknown variable {{version}}"},
		{name: "missing argument", m: web(func(w *v1alpha1.WebMetric) { w.Body = "{{args.nope}}" }),
			wantErr: `body: template: {{args.nope}}: no argument "nope"`},
		{name: "unreachable", m: web(func(w *v1alpha1.WebMetric) { w.URL = "http://127.0.0.1:1/x" }),
			wantErr: "GET http://127.0.0.1:1/x: "},
	}
	p := New(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for len(got) > 0 {
				<-got
			}
			v, err := p.Measure(context.Background(), tt.m, target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Inconclusive != tt.wantInconclusive || v.Result != tt.want || (tt.wantText != "" && v.Text != tt.wantText) {
				t.Errorf("got %+v, want result %v inconclusive %t text %q", v, tt.want, tt.wantInconclusive, tt.wantText)
			}
			if tt.wantSeen != nil {
				if s := <-got; s != *tt.wantSeen {
					t.Errorf("server saw %+v, want %+v", s, *tt.wantSeen)
				}
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	timeout := intstr.FromString("100ms")
	m := v1alpha1.Metric{Name: "slow", Provider: v1alpha1.MetricProvider{Web: &v1alpha1.WebMetric{URL: srv.URL, Timeout: &timeout}}}
	_, err := New(nil).Measure(context.Background(), m, analysis.Target{})
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("error %v, want a deadline", err)
	}
}

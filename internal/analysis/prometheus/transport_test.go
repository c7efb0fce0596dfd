package prometheus

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/promenv"
)

// flagNames are the names a caller with flags gives the settings, as ramp controller does.
var flagNames = TransportOptions{
	Names: map[string]string{
		"bearerTokenFile": "--prometheus-bearer-token-file", "basicAuth": "basic auth", "basicAuth.username": "--prometheus-username",
		"basicAuth.passwordFile": "--prometheus-password-file", "tlsConfig": "TLS", "tlsConfig.caFile": "--prometheus-ca-file",
		"sigv4": "--prometheus-sigv4-region", "sigv4.region": "--prometheus-sigv4-region",
	},
	NoCredentials: "no credentials are set (--prometheus-bearer-token-file, --prometheus-username)",
	UnknownCA:     "set --prometheus-ca-file",
}

// TestTransport queries a real Prometheus through Transport behind checking proxies: the
// settings that a caller gives without a metric (files, flags) reach the proxies, a rotated
// password file counts from the next request without a new transport, connections are kept
// between requests, and errors name the settings as the caller does, never their values.
func TestTransport(t *testing.T) {
	bin := promenv.Binary(t)
	// Given a real Prometheus scraping test_access 7
	series := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# TYPE test_access gauge\ntest_access 7\n")
	}))
	defer series.Close()
	prom := promenv.Start(t, bin, hostPort(series.URL))
	promenv.WaitScrapes(t, prom, 1, 30*time.Second)
	target, _ := url.Parse(prom)
	forward := httputil.NewSingleHostReverseProxy(target)

	const user, password, token = "ramp", "pa55-word", "t0ken-in-a-file"
	var conns atomic.Int64 // connections the TLS proxy accepted
	gate := func(check func(r *http.Request) error) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := check(r); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			forward.ServeHTTP(w, r)
		}))
		s.Config.ErrorLog = log.New(io.Discard, "", 0)
		return s
	}
	dir := t.TempDir()
	passwordFile := writeFileIn(t, dir, "password", []byte(password+"\n"))
	ca := newCA(t, "ramp test CA")
	caFile := writeFileIn(t, dir, "ca.pem", ca.certPEM)
	basicTLS := gate(func(r *http.Request) error {
		// The password is read from the file at each request.
		want, _ := os.ReadFile(passwordFile)
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != strings.TrimSpace(string(want)) {
			return errors.New("wrong basic auth")
		}
		return nil
	})
	basicTLS.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "prometheus.test", false).pair(t)}}
	basicTLS.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	basicTLS.StartTLS()
	defer basicTLS.Close()
	bearer := gate(func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer "+token {
			return errors.New("wrong bearer token")
		}
		return nil
	})
	bearer.Start()
	defer bearer.Close()

	query := func(addr string, rt http.RoundTripper) (float64, error) {
		c, err := promapi.NewClient(promapi.Config{Address: addr, RoundTripper: rt})
		if err != nil {
			return 0, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, _, _, err := promv1.NewAPI(c).Query(ctx, "test_access", time.Now())
		if err != nil {
			return 0, err
		}
		v, ok := res.(model.Vector)
		if !ok || len(v) != 1 {
			return 0, errors.New("not one series: " + res.String())
		}
		return float64(v[0].Value), nil
	}
	basic := func(file string) *v1alpha1.PrometheusBasicAuth {
		return &v1alpha1.PrometheusBasicAuth{Username: user, PasswordFile: file}
	}
	tests := []struct {
		name    string
		addr    string
		pm      v1alpha1.PrometheusMetric
		newErr  string // Transport's error
		wantErr string // the query's error
	}{
		{name: "basic auth and the CA from files", addr: basicTLS.URL, pm: v1alpha1.PrometheusMetric{BasicAuth: basic(passwordFile), TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile}}},
		{name: "a wrong password", addr: basicTLS.URL, pm: v1alpha1.PrometheusMetric{BasicAuth: basic(writeFileIn(t, dir, "wrong", []byte("wrong"))), TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile}},
			wantErr: "401 Unauthorized from " + strings.TrimPrefix(basicTLS.URL, "https://") + ": the basic auth user name and password were refused"},
		{name: "no credentials", addr: basicTLS.URL, pm: v1alpha1.PrometheusMetric{TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile}},
			wantErr: "401 Unauthorized from " + strings.TrimPrefix(basicTLS.URL, "https://") + ": no credentials are set (--prometheus-bearer-token-file, --prometheus-username)"},
		{name: "no CA", addr: basicTLS.URL, pm: v1alpha1.PrometheusMetric{BasicAuth: basic(passwordFile)},
			wantErr: "x509: certificate signed by unknown authority (set --prometheus-ca-file)"},
		{name: "without verification", addr: basicTLS.URL, pm: v1alpha1.PrometheusMetric{BasicAuth: basic(passwordFile), TLSConfig: &v1alpha1.PrometheusTLSConfig{InsecureSkipVerify: true}}},
		{name: "a missing password file", pm: v1alpha1.PrometheusMetric{BasicAuth: basic(filepath.Join(dir, "nope"))},
			newErr: "--prometheus-password-file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{name: "a CA file that is not PEM", pm: v1alpha1.PrometheusMetric{TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: passwordFile}},
			newErr: "--prometheus-ca-file " + passwordFile + ": holds no PEM certificate"},
		{name: "a bearer token file", addr: bearer.URL, pm: v1alpha1.PrometheusMetric{BearerTokenFile: writeFileIn(t, dir, "token", []byte(token+"\n"))}},
		{name: "a wrong bearer token file", addr: bearer.URL, pm: v1alpha1.PrometheusMetric{BearerTokenFile: writeFileIn(t, dir, "wrong-token", []byte("nope\n"))},
			wantErr: "the bearer token was refused"},
		{name: "SigV4 with basic auth", pm: v1alpha1.PrometheusMetric{BasicAuth: basic(passwordFile), SigV4: &v1alpha1.PrometheusSigV4{Region: "eu-west-1"}},
			newErr: "--prometheus-sigv4-region: is set together with basic auth or a bearer token"},
		{name: "a Secret reference", pm: v1alpha1.PrometheusMetric{BearerTokenSecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}},
			newErr: "bearerTokenSecretRef: a Kubernetes Secret cannot be read in local mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := New(nil).Transport(tt.pm, flagNames)
			if tt.newErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.newErr) {
					t.Fatalf("Transport: %v, want an error containing %q", err, tt.newErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := query(tt.addr, rt)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("query: %v, want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), token) {
					t.Errorf("the error shows a secret: %v", err)
				}
				return
			}
			if err != nil || v != 7 {
				t.Fatalf("query: %v, %v; want 7", v, err)
			}
		})
	}

	t.Run("connections are kept and a rotated password counts from the next request", func(t *testing.T) {
		rt, err := New(nil).Transport(v1alpha1.PrometheusMetric{BasicAuth: basic(passwordFile), TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile}}, flagNames)
		if err != nil {
			t.Fatal(err)
		}
		before := conns.Load()
		for i := 0; i < 3; i++ {
			if v, err := query(basicTLS.URL, rt); err != nil || v != 7 {
				t.Fatalf("query %d: %v, %v", i, v, err)
			}
		}
		if n := conns.Load() - before; n != 1 {
			t.Errorf("3 queries opened %d connections, want 1", n)
		}
		// When the mounted Secret changes (the proxy wants the file's content at each request)
		if err := os.WriteFile(passwordFile, []byte("rotated-"+password), 0o600); err != nil {
			t.Fatal(err)
		}
		if v, err := query(basicTLS.URL, rt); err != nil || v != 7 {
			t.Fatalf("after the rotation: %v, %v", v, err)
		}
	})
}

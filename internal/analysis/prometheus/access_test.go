package prometheus

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/test/promenv"
)

// TestRealPrometheusAccess measures through a real Prometheus behind checking proxies: one
// that wants basic auth, one that wants a bearer token, TLS-terminating ones with a CA made
// here (one also wants a client certificate), and one that checks a SigV4 signature as
// Amazon Managed Service for Prometheus does.
func TestRealPrometheusAccess(t *testing.T) {
	bin := promenv.Binary(t)
	// Given a real Prometheus scraping a page with test_access 7
	series := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# TYPE test_access gauge\ntest_access 7\n")
	}))
	defer series.Close()
	prom := promenv.Start(t, bin, hostPort(series.URL))
	promenv.WaitScrapes(t, prom, 1, 30*time.Second)
	target, _ := url.Parse(prom)
	forward := httputil.NewSingleHostReverseProxy(target)

	// and checking proxies in front of it
	var saw atomic.Value // what the last proxy checked
	saw.Store("")
	gate := func(check func(r *http.Request, body []byte) error) *httptest.Server {
		return httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if err := check(r, body); err != nil {
				saw.Store("refused: " + err.Error())
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			saw.Store("ok")
			forward.ServeHTTP(w, r)
		}))
	}
	start := func(s *httptest.Server) string { s.Start(); t.Cleanup(s.Close); return s.URL }
	startTLS := func(s *httptest.Server, cfg *tls.Config) string {
		s.TLS = cfg
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
		s.StartTLS()
		t.Cleanup(s.Close)
		return s.URL
	}

	const user, password, token = "ramp", "pa55-word", "t0ken-from-secret"
	basic := start(gate(func(r *http.Request, _ []byte) error {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			return errors.New("wrong basic auth")
		}
		return nil
	}))
	bearer := start(gate(func(r *http.Request, _ []byte) error {
		if r.Header.Get("Authorization") != "Bearer "+token {
			return errors.New("wrong bearer token")
		}
		return nil
	}))

	ca := newCA(t, "ramp test CA")
	other := newCA(t, "another CA")
	serverCert := ca.issue(t, "prometheus.test", false)
	clientCert := ca.issue(t, "ramp", true)
	always := func(*http.Request, []byte) error { return nil }
	tlsAddr := startTLS(gate(always), &tls.Config{Certificates: []tls.Certificate{serverCert.pair(t)}})
	mtlsAddr := startTLS(gate(func(r *http.Request, _ []byte) error {
		if len(r.TLS.VerifiedChains) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "ramp" {
			return errors.New("no client certificate")
		}
		return nil
	}), &tls.Config{Certificates: []tls.Certificate{serverCert.pair(t)}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert})

	const keyID, secretKey, region = "AKIDRAMPTEST", "s3cret/access+key", "eu-west-1"
	sigv4Addr := start(gate(func(r *http.Request, body []byte) error {
		if r.Header.Get("X-Scope-OrgID") != "team-a" {
			return errors.New("no tenant header")
		}
		return checkSigV4(r, body, keyID, secretKey, region)
	}))

	dir := t.TempDir()
	caFile := writeFileIn(t, dir, "ca.pem", ca.certPEM)
	otherCAFile := writeFileIn(t, dir, "other-ca.pem", other.certPEM)
	notPEM := writeFileIn(t, dir, "not-a-ca.pem", []byte("not a certificate\n"))
	certFile := writeFileIn(t, dir, "client.pem", clientCert.certPEM)
	keyFile := writeFileIn(t, dir, "client-key.pem", clientCert.keyPEM)
	secrets := fakeSecrets{
		"prom-auth/password": password,
		"prom-auth/token":    token + "\n",
		"prom-tls/ca.crt":    string(ca.certPEM),
		"prom-tls/tls.crt":   string(clientCert.certPEM),
		"prom-tls/tls.key":   string(clientCert.keyPEM),
		"aws/id":             keyID,
		"aws/secret":         secretKey,
		"aws/wrong":          "not-the-secret",
	}
	ref := func(name, key string) *v1alpha1.SecretKeyRef { return &v1alpha1.SecretKeyRef{Name: name, Key: key} }
	// The AWS default chain reads only the environment here.
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	tenant := []v1alpha1.WebMetricHeader{{Key: "X-Scope-OrgID", Value: "team-a"}}

	tests := []struct {
		name    string
		pm      v1alpha1.PrometheusMetric
		local   bool // no Secret reader, as in local mode
		env     map[string]string
		wantErr string
		wantSaw string // what the proxy saw; empty means no check
	}{
		{name: "basic auth", pm: v1alpha1.PrometheusMetric{Address: basic, BasicAuth: &v1alpha1.PrometheusBasicAuth{Username: user, Password: password}}, wantSaw: "ok"},
		{name: "basic auth, password from a Secret", pm: v1alpha1.PrometheusMetric{Address: basic, BasicAuth: &v1alpha1.PrometheusBasicAuth{Username: user, PasswordSecretRef: ref("prom-auth", "password")}}, wantSaw: "ok"},
		{name: "basic auth, password from the environment", env: map[string]string{"PROM_PASSWORD": password},
			pm: v1alpha1.PrometheusMetric{Address: basic, BasicAuth: &v1alpha1.PrometheusBasicAuth{Username: user, PasswordEnv: "PROM_PASSWORD"}}, wantSaw: "ok"},
		{name: "basic auth, password from a file", pm: v1alpha1.PrometheusMetric{Address: basic, BasicAuth: &v1alpha1.PrometheusBasicAuth{Username: user, PasswordFile: writeFileIn(t, dir, "password", []byte(password+"\n"))}}, wantSaw: "ok"},
		{name: "basic auth, wrong password", pm: v1alpha1.PrometheusMetric{Address: basic, BasicAuth: &v1alpha1.PrometheusBasicAuth{Username: user, Password: "wrong"}},
			wantErr: "401 Unauthorized from " + hostPort(basic) + ": the basicAuth user name and password were refused", wantSaw: "refused: wrong basic auth"},
		{name: "no credentials", pm: v1alpha1.PrometheusMetric{Address: basic}, wantErr: "no bearer token is set, nor basicAuth or sigv4"},
		{name: "bearer token from a Secret", pm: v1alpha1.PrometheusMetric{Address: bearer, BearerTokenSecretRef: ref("prom-auth", "token")}, wantSaw: "ok"},
		{name: "Secret without the key", pm: v1alpha1.PrometheusMetric{Address: bearer, BearerTokenSecretRef: ref("prom-auth", "tokn")},
			wantErr: `bearerTokenSecretRef: secret team-a/prom-auth has no key "tokn"`},
		{name: "local mode refuses a Secret reference", local: true, pm: v1alpha1.PrometheusMetric{Address: basic, BasicAuth: &v1alpha1.PrometheusBasicAuth{Username: user, PasswordSecretRef: ref("prom-auth", "password")}},
			wantErr: "basicAuth.passwordSecretRef: a Kubernetes Secret cannot be read in local mode; use basicAuth.passwordFile or basicAuth.passwordEnv"},

		{name: "TLS without the CA is refused", pm: v1alpha1.PrometheusMetric{Address: tlsAddr},
			wantErr: "x509: certificate signed by unknown authority (set tlsConfig.caFile, ca or caSecretRef to the CA that signed it)"},
		{name: "TLS with another CA is refused", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: otherCAFile}},
			wantErr: "certificate signed by unknown authority"},
		{name: "TLS with the CA file", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile}}, wantSaw: "ok"},
		{name: "TLS with the CA inline", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CA: string(ca.certPEM)}}, wantSaw: "ok"},
		{name: "TLS with the CA from a Secret", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CASecretRef: ref("prom-tls", "ca.crt")}}, wantSaw: "ok"},
		{name: "TLS with the server name on the certificate", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile, ServerName: "prometheus.test"}}, wantSaw: "ok"},
		{name: "TLS with a server name not on the certificate", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile, ServerName: "elsewhere.test"}},
			wantErr: "x509: certificate is valid for prometheus.test, not elsewhere.test"},
		{name: "TLS without verification", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{InsecureSkipVerify: true}}, wantSaw: "ok"},
		{name: "a CA file that does not parse", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: notPEM}},
			wantErr: "tlsConfig.caFile " + notPEM + ": holds no PEM certificate"},
		{name: "a CA file that is missing", pm: v1alpha1.PrometheusMetric{Address: tlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: filepath.Join(dir, "nope.pem")}},
			wantErr: "tlsConfig.caFile: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{name: "mutual TLS with a client certificate from files", pm: v1alpha1.PrometheusMetric{Address: mtlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}}, wantSaw: "ok"},
		{name: "mutual TLS with a client certificate from a Secret", pm: v1alpha1.PrometheusMetric{Address: mtlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CASecretRef: ref("prom-tls", "ca.crt"), CertSecretRef: ref("prom-tls", "tls.crt"), KeySecretRef: ref("prom-tls", "tls.key")}}, wantSaw: "ok"},
		{name: "mutual TLS without a client certificate", pm: v1alpha1.PrometheusMetric{Address: mtlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile}},
			wantErr: "certificate required"},
		{name: "a client key that is not the certificate's", pm: v1alpha1.PrometheusMetric{Address: mtlsAddr, TLSConfig: &v1alpha1.PrometheusTLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: writeFileIn(t, dir, "other-key.pem", other.keyPEM)}},
			wantErr: "tlsConfig (certFile " + certFile + ", keyFile " + filepath.Join(dir, "other-key.pem") + "): unable to use specified client cert (inline) & key (inline): tls: private key does not match public key"},

		{name: "SigV4 with the environment's credentials", env: map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": secretKey},
			pm: v1alpha1.PrometheusMetric{Address: sigv4Addr, Headers: tenant, SigV4: &v1alpha1.PrometheusSigV4{Region: region}}, wantSaw: "ok"},
		{name: "SigV4 with a wrong secret key", env: map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": "wrong"},
			pm:      v1alpha1.PrometheusMetric{Address: sigv4Addr, Headers: tenant, SigV4: &v1alpha1.PrometheusSigV4{Region: region}},
			wantErr: "401 Unauthorized from " + hostPort(sigv4Addr) + ": the SigV4 signature was refused", wantSaw: "refused: the signature differs"},
		{name: "SigV4 with basic auth", pm: v1alpha1.PrometheusMetric{Address: sigv4Addr, BasicAuth: &v1alpha1.PrometheusBasicAuth{Username: user, Password: password}, SigV4: &v1alpha1.PrometheusSigV4{Region: region}},
			wantErr: "sigv4: is set together with basicAuth or a bearer token"},
		{name: "SigV4 without a region", pm: v1alpha1.PrometheusMetric{Address: sigv4Addr, SigV4: &v1alpha1.PrometheusSigV4{}}, wantErr: "sigv4.region: is required"},
		{name: "SigV4 with the access key from Secrets", pm: v1alpha1.PrometheusMetric{Address: sigv4Addr, Headers: tenant,
			SigV4: &v1alpha1.PrometheusSigV4{Region: region, AccessKeySecretRef: ref("aws", "id"), SecretKeySecretRef: ref("aws", "secret")}}, wantSaw: "ok"},
		{name: "SigV4 with a wrong secret key from a Secret", pm: v1alpha1.PrometheusMetric{Address: sigv4Addr, Headers: tenant,
			SigV4: &v1alpha1.PrometheusSigV4{Region: region, AccessKeySecretRef: ref("aws", "id"), SecretKeySecretRef: ref("aws", "wrong")}},
			wantErr: "the SigV4 signature was refused", wantSaw: "refused: the signature differs"},
		{name: "SigV4 without credentials", env: map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
			pm: v1alpha1.PrometheusMetric{Address: sigv4Addr, SigV4: &v1alpha1.PrometheusSigV4{Region: "us-east-2"}}, wantErr: "sigv4: could not get SigV4 credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			saw.Store("")
			pm := tt.pm
			pm.Query = "test_access"
			tg := analysis.Target{Rollout: "chat-api", Namespace: "team-a", Revision: 2}
			if !tt.local {
				tg.Secrets = secrets
			}
			v, err := New(nil).Measure(context.Background(), v1alpha1.Metric{Name: "m", Provider: v1alpha1.MetricProvider{Prometheus: &pm}}, tg)
			if tt.wantSaw != "" && !strings.HasPrefix(saw.Load().(string), tt.wantSaw) {
				t.Errorf("the proxy saw %q, want %q", saw.Load(), tt.wantSaw)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				for _, s := range []string{password, token, secretKey, "not-the-secret", "PRIVATE KEY"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error shows a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Inconclusive || v.Result != 7 {
				t.Errorf("got %+v, want 7", v)
			}
		})
	}
}

// fakeSecrets are the Secrets of namespace team-a by "name/key".
type fakeSecrets map[string]string

func (f fakeSecrets) SecretValue(_ context.Context, ns, name, key string) ([]byte, error) {
	v, ok := f[name+"/"+key]
	if ns != "team-a" || !ok {
		return nil, fmt.Errorf("secret %s/%s has no key %q", ns, name, key)
	}
	return []byte(v), nil
}

// checkSigV4 checks r's SigV4 signature as AWS does: it signs the same request again with
// aws-sdk-go-v2's signer and the known credentials and compares.
func checkSigV4(r *http.Request, body []byte, keyID, secret, region string) error {
	fields := map[string]string{}
	algo, rest, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if algo != "AWS4-HMAC-SHA256" {
		return fmt.Errorf("not signed: %q", algo)
	}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %w", err)
	}
	if d := time.Since(at); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("signed %s ago", d)
	}
	scope := fmt.Sprintf("%s/%s/%s/aps/aws4_request", keyID, at.Format("20060102"), region)
	if fields["Credential"] != scope {
		return fmt.Errorf("credential scope %q, want %q", fields["Credential"], scope)
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !contains(signed, "x-scope-orgid") {
		return fmt.Errorf("the tenant header is not signed: %s", fields["SignedHeaders"])
	}
	for _, h := range signed {
		if h != "host" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "aps", region, at); err != nil {
		return err
	}
	if again.Header.Get("Authorization") != r.Header.Get("Authorization") {
		return errors.New("the signature differs")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// testCA is a certificate authority made for a test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
	pool    *x509.CertPool
}

// testCert is a certificate the test CA issued, with its key.
type testCert struct{ certPEM, keyPEM []byte }

func (c testCert) pair(t *testing.T) tls.Certificate {
	p, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, certPEM: pemOf("CERTIFICATE", der), keyPEM: keyPEM(t, key), pool: pool}
}

// issue makes a server certificate for name and 127.0.0.1, or a client certificate.
func (ca *testCA) issue(t *testing.T, name string, client bool) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames, tmpl.IPAddresses = nil, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{certPEM: pemOf("CERTIFICATE", der), keyPEM: keyPEM(t, key)}
}

func keyPEM(t *testing.T, key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("PRIVATE KEY", der)
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFileIn(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

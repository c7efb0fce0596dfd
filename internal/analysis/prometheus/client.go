package prometheus

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/common/config"
	"github.com/prometheus/sigv4"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/secretsource"
	"ramp.dev/ramp/internal/spec"
)

// clientName labels the connections of prometheus/common's HTTP client.
const clientName = "ramp-prometheus"

// roundTripper returns the transport of one measurement of pm: prometheus/common's HTTP
// client (basic auth, bearer token, TLS) under the SigV4 signer when pm has sigv4, under the
// metric's headers. Every secret is read now, so a changed file, variable or Secret counts
// from this measurement on. ctx must be used for the requests (it carries the transport
// under the signer); the caller calls done after them.
func (p *Provider) roundTripper(ctx context.Context, pm *v1alpha1.PrometheusMetric, headers [][2]string, t analysis.Target) (_ context.Context, rt http.RoundTripper, done func(), err error) {
	r := secretSource{ctx: ctx, t: t}
	acc, err := r.access(pm)
	if err != nil {
		return nil, nil, nil, err
	}
	base, err := r.base(ctx, pm, acc.cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	done = func() {
		if c, ok := base.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
	ctx, rt, err = p.chain(ctx, r, pm, acc, base, headers)
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	return ctx, rt, done, nil
}

// access is what the requests of a measurement are sent with: prometheus/common's HTTP client
// settings, every secret read, and what a refusal means.
type access struct {
	cfg config.HTTPClientConfig
	// auth says what was refused when credentials were sent; empty means none were.
	auth string
}

// access reads pm's access settings: bearer token, basic auth and TLS.
func (r secretSource) access(pm *v1alpha1.PrometheusMetric) (access, error) {
	if r.t.Secrets == nil {
		if refs := spec.PrometheusSecretRefs(pm); len(refs) > 0 {
			return access{}, fmt.Errorf("%s: %s", r.name(refs[0].Path), refs[0].LocalModeMessage())
		}
	}
	var a access
	a.cfg.FollowRedirects = true
	token, ok, err := r.read("bearerToken", pm.BearerToken, pm.BearerTokenFile, pm.BearerTokenEnv, pm.BearerTokenSecretRef)
	if err != nil {
		return a, err
	}
	if ok {
		a.cfg.Authorization = &config.Authorization{Type: "Bearer", Credentials: config.Secret(token)}
		a.auth = "the bearer token was refused"
	}
	if ba := pm.BasicAuth; ba != nil {
		user, _, err := r.read("basicAuth.username", ba.Username, "", "", ba.UsernameSecretRef)
		if err != nil {
			return a, err
		}
		pass, _, err := r.read("basicAuth.password", ba.Password, ba.PasswordFile, ba.PasswordEnv, ba.PasswordSecretRef)
		if err != nil {
			return a, err
		}
		a.cfg.BasicAuth = &config.BasicAuth{Username: user, Password: config.Secret(pass)}
		a.auth = "the " + r.name("basicAuth") + " user name and password were refused"
	}
	if tc := pm.TLSConfig; tc != nil {
		ca, ok, err := r.read("tlsConfig.ca", tc.CA, tc.CAFile, "", tc.CASecretRef)
		if err != nil {
			return a, err
		}
		if ok && !x509.NewCertPool().AppendCertsFromPEM([]byte(ca)) {
			return a, fmt.Errorf("%s: holds no PEM certificate", r.where("tlsConfig.ca", tc.CA, tc.CAFile, "", tc.CASecretRef))
		}
		cert, _, err := r.read("tlsConfig.cert", tc.Cert, tc.CertFile, "", tc.CertSecretRef)
		if err != nil {
			return a, err
		}
		key, _, err := r.read("tlsConfig.key", "", tc.KeyFile, "", tc.KeySecretRef)
		if err != nil {
			return a, err
		}
		a.cfg.TLSConfig = config.TLSConfig{CA: ca, Cert: cert, Key: config.Secret(key), ServerName: tc.ServerName, InsecureSkipVerify: tc.InsecureSkipVerify}
	}
	if err := a.cfg.Validate(); err != nil {
		return a, fmt.Errorf("http client settings: %w", err)
	}
	if pm.SigV4 != nil && (a.cfg.Authorization != nil || a.cfg.BasicAuth != nil) {
		return a, fmt.Errorf("%s: is set together with %s or %s; sigv4 signs the Authorization header, set one", r.name("sigv4"), r.name("basicAuth"), r.name("a bearer token"))
	}
	return a, nil
}

// base returns prometheus/common's HTTP client transport of cfg.
func (r secretSource) base(ctx context.Context, pm *v1alpha1.PrometheusMetric, cfg config.HTTPClientConfig) (http.RoundTripper, error) {
	base, err := config.NewRoundTripperFromConfigWithContext(ctx, cfg, clientName)
	if err != nil {
		// Only the TLS settings can fail here; the library calls what it read "inline".
		tc := pm.TLSConfig
		if tc == nil {
			return nil, fmt.Errorf("http client: %w", err)
		}
		return nil, fmt.Errorf("%s (%s, %s): %w", r.name("tlsConfig"), r.where("cert", tc.Cert, tc.CertFile, "", tc.CertSecretRef),
			r.where("key", "", tc.KeyFile, "", tc.KeySecretRef), err)
	}
	return base, nil
}

// chain puts the SigV4 signer (when pm has sigv4), the headers and the check of refusals
// over base. The returned ctx must be used for the requests.
func (p *Provider) chain(ctx context.Context, r secretSource, pm *v1alpha1.PrometheusMetric, acc access, base http.RoundTripper, headers [][2]string) (context.Context, http.RoundTripper, error) {
	check := &checkStatus{next: base, headers: headers, auth: acc.auth, none: r.opts.NoCredentials, unknownCA: r.opts.UnknownCA}
	if pm.SigV4 != nil {
		signer, err := p.signer(pm.SigV4, r)
		if err != nil {
			return nil, nil, err
		}
		ctx = context.WithValue(ctx, underSignerKey{}, base)
		check.next = signer
		check.auth = "the SigV4 signature was refused"
	}
	return ctx, check, nil
}

// secretSource reads the value of a setting from the one place it is set.
type secretSource struct {
	ctx context.Context
	t   analysis.Target
	// opts name the settings in errors; zero means by their field paths.
	opts TransportOptions
}

// name is what errors call the setting at path: its name in opts, else the path.
func (s secretSource) name(path string) string {
	if n := s.opts.Names[path]; n != "" {
		return n
	}
	return path
}

// read returns the value of the setting at path from the one source that is set
// (secretsource.Read); ok is false when none is set.
func (s secretSource) read(path, inline, file, env string, ref *v1alpha1.SecretKeyRef) (v string, ok bool, err error) {
	var secrets secretsource.Reader
	if s.t.Secrets != nil {
		secrets = s.t.Secrets
	}
	return secretsource.Sources{Secrets: secrets, Namespace: s.t.Namespace, Name: s.name}.Read(s.ctx, path, inline, file, env, ref)
}

// where names the source read describes: the field path and, for a file or Secret, which.
func (s secretSource) where(path, inline, file, env string, ref *v1alpha1.SecretKeyRef) string {
	switch {
	case inline != "":
		return s.name(path)
	case file != "":
		return s.name(path+"File") + " " + file
	case env != "":
		return s.name(path+"Env") + " " + env
	case ref != nil:
		return fmt.Sprintf("%sSecretRef (key %q of secret %s/%s)", path, ref.Key, s.t.Namespace, ref.Name)
	}
	return path
}

// underSignerKey is the context key of the transport under a cached SigV4 signer.
type underSignerKey struct{}

// underSigner sends a request through the transport its context carries: a signer is kept
// across measurements (its credentials are cached), the transport under it is not.
type underSigner struct{}

func (underSigner) RoundTrip(req *http.Request) (*http.Response, error) {
	next, ok := req.Context().Value(underSignerKey{}).(http.RoundTripper)
	if !ok {
		return nil, errors.New("sigv4: the request's context has no transport")
	}
	return next.RoundTrip(req)
}

// maxSigners bounds the signers kept; past it they are all dropped.
const maxSigners = 16

// signer returns the SigV4 signer of s, made once per settings: github.com/prometheus/sigv4
// with the AWS default credential chain, or the access key of the secret refs.
func (p *Provider) signer(s *v1alpha1.PrometheusSigV4, r secretSource) (http.RoundTripper, error) {
	if s.Region == "" {
		// The signer signs for the configured region only, not the default chain's.
		return nil, fmt.Errorf("%s: is required", r.name("sigv4.region"))
	}
	cfg := &sigv4.SigV4Config{Region: s.Region, RoleARN: s.RoleARN, Profile: s.Profile}
	if s.AccessKeySecretRef != nil || s.SecretKeySecretRef != nil {
		var err error
		if cfg.AccessKey, _, err = r.read("sigv4.accessKey", "", "", "", s.AccessKeySecretRef); err != nil {
			return nil, err
		}
		var secret string
		if secret, _, err = r.read("sigv4.secretKey", "", "", "", s.SecretKeySecretRef); err != nil {
			return nil, err
		}
		cfg.SecretKey = config.Secret(secret)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sigv4: %w", err)
	}
	sum := sha256.Sum256([]byte(cfg.SecretKey))
	key := strings.Join([]string{cfg.Region, cfg.RoleARN, cfg.Profile, cfg.AccessKey, hex.EncodeToString(sum[:])}, "\x00")
	p.mu.Lock()
	defer p.mu.Unlock()
	if rt := p.signers[key]; rt != nil {
		return rt, nil
	}
	rt, err := sigv4.NewSigV4RoundTripper(cfg, underSigner{})
	if err != nil {
		return nil, fmt.Errorf("sigv4: %w", err)
	}
	if p.signers == nil || len(p.signers) >= maxSigners {
		p.signers = map[string]http.RoundTripper{}
	}
	p.signers[key] = rt
	return rt, nil
}

// checkStatus sets the metric's headers on every request and turns a refusal (401, 403)
// into an error that says what to check.
type checkStatus struct {
	next    http.RoundTripper
	headers [][2]string
	// auth says what was refused when credentials were sent; empty means none were.
	auth string
	// none says what to set when a request without credentials is refused, unknownCA what
	// to set when the server's certificate is signed by an unknown authority; empty means
	// the metric's fields.
	none, unknownCA string
}

func (t *checkStatus) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for _, h := range t.headers {
		req.Header.Set(h[0], h[1])
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) {
			hint := t.unknownCA
			if hint == "" {
				hint = "set tlsConfig.caFile, ca or caSecretRef to the CA that signed it"
			}
			return nil, fmt.Errorf("%w (%s)", err, hint)
		}
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		// The API client would report "client error: 401"; say what to check.
		resp.Body.Close()
		how := t.auth
		if how == "" {
			how = t.none
		}
		if how == "" {
			how = "no bearer token is set, nor basicAuth or sigv4"
		}
		return nil, errors.New(resp.Status + " from " + req.URL.Host + ": " + how)
	}
	return resp, nil
}

package prometheus

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/common/config"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

// TransportOptions say how a Transport's errors name its settings, which the caller may have
// taken from somewhere other than a prometheus metric (command-line flags, say).
type TransportOptions struct {
	// Names are what errors call the settings, by their field path in a prometheus metric
	// ("bearerTokenFile", "basicAuth", "basicAuth.passwordFile", "tlsConfig", "tlsConfig.caFile",
	// "sigv4", "sigv4.region"...). A missing name means the field path.
	Names map[string]string
	// NoCredentials says what to set when a request sent without credentials is refused.
	// Empty means the metric's fields.
	NoCredentials string
	// UnknownCA says what to set when the server's certificate is signed by an authority that
	// is not trusted. Empty means the metric's fields.
	UnknownCA string
}

// Transport returns an http.RoundTripper that sends requests with the access settings of pm
// (bearer token, basic auth, TLS, SigV4 and headers; its address, query and the rest are not
// used), as a measurement of pm would: the same code reads the same settings. Secret
// references need a Kubernetes Secret reader of a rollout and are refused.
//
// Each request reads the settings' files and variables again, so a rotated token or password
// counts from the next request; the client under it is made again only when what they hold
// changes, so connections are kept between requests. The settings are read once here: an
// error says which cannot be read (naming them as o says), never what they hold.
func (p *Provider) Transport(pm v1alpha1.PrometheusMetric, o TransportOptions) (http.RoundTripper, error) {
	t := &transport{p: p, pm: pm, o: o}
	if _, _, err := t.prepare(context.Background()); err != nil {
		return nil, err
	}
	return t, nil
}

// transport is the round tripper Transport returns.
type transport struct {
	p  *Provider
	pm v1alpha1.PrometheusMetric
	o  TransportOptions

	mu sync.Mutex
	// sum is the fingerprint of the settings base was made with.
	sum  [sha256.Size]byte
	base http.RoundTripper
}

// prepare reads the settings and returns the round tripper of a request and the context the
// request must carry.
func (t *transport) prepare(ctx context.Context) (context.Context, http.RoundTripper, error) {
	r := secretSource{ctx: ctx, t: analysis.Target{}, opts: t.o}
	acc, err := r.access(&t.pm)
	if err != nil {
		return nil, nil, err
	}
	base, err := t.baseOf(r, acc.cfg)
	if err != nil {
		return nil, nil, err
	}
	headers := make([][2]string, 0, len(t.pm.Headers))
	for _, h := range t.pm.Headers {
		headers = append(headers, [2]string{h.Key, h.Value})
	}
	return t.p.chain(ctx, r, &t.pm, acc, base, headers)
}

// baseOf returns the client transport of cfg: the one made before when cfg holds the same
// settings, else a new one (the old one's idle connections are closed).
func (t *transport) baseOf(r secretSource, cfg config.HTTPClientConfig) (http.RoundTripper, error) {
	sum := fingerprint(cfg)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.base != nil && sum == t.sum {
		return t.base, nil
	}
	// Made to outlive this request: not with its context.
	base, err := r.base(context.Background(), &t.pm, cfg)
	if err != nil {
		return nil, err
	}
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	t.sum, t.base = sum, base
	return base, nil
}

// RoundTrip sends req with the settings as they are now.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, rt, err := t.prepare(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return rt.RoundTrip(req.WithContext(ctx))
}

// CloseIdleConnections closes the idle connections of the client under the transport.
func (t *transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// fingerprint is a digest of the settings of cfg that ramp sets, secrets included; it is
// compared, never shown.
func fingerprint(cfg config.HTTPClientConfig) [sha256.Size]byte {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s;", len(s), s) }
	if a := cfg.Authorization; a != nil {
		field("authorization")
		field(a.Type)
		field(string(a.Credentials))
	}
	if b := cfg.BasicAuth; b != nil {
		field("basic")
		field(b.Username)
		field(string(b.Password))
	}
	tc := cfg.TLSConfig
	field("tls")
	for _, s := range []string{tc.CA, tc.Cert, string(tc.Key), tc.ServerName, fmt.Sprint(tc.InsecureSkipVerify)} {
		field(s)
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

package local

import (
	"log/slog"
	"net/netip"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/spec"
)

// DefaultFirstByteTimeout bounds the wait for an instance's response headers when
// spec.proxy.timeouts.firstByte is not set, as nginx's proxy_read_timeout does: an LLM chat
// streams its answer (SSE sends the headers at once and the tokens after), so only an
// instance that accepted a request and never answers waits this long; the client then gets
// 504 instead of hanging. firstByte "0" turns it off, a longer value allows slow
// non-streamed answers.
const DefaultFirstByteTimeout = 60 * time.Second

// proxySettings translates spec.proxy into the proxy's upstream settings. The spec was
// validated, so parse errors cannot happen and are ignored.
func proxySettings(r *v1alpha1.Rollout) proxy.Settings {
	ps := r.Spec.Proxy
	if ps == nil {
		return proxy.Settings{FirstByteTimeout: DefaultFirstByteTimeout}
	}
	s := proxy.Settings{H2C: ps.UpstreamProtocol == "h2c", MaxRequestBodyBytes: ps.MaxRequestBodyBytes,
		MaxResponseHeaderBytes: int(ps.MaxResponseHeaderBytes), FirstByteTimeout: DefaultFirstByteTimeout}
	if t := ps.Timeouts; t != nil {
		s.ConnectTimeout, _ = spec.ParseDuration(t.Connect)
		if t.FirstByte != nil {
			s.FirstByteTimeout, _ = spec.ParseDuration(t.FirstByte)
		}
		s.IdleTimeout, _ = spec.ParseDuration(t.Idle)
	}
	return s
}

// listenerConfig is what the rollout's listeners are built from; a change restarts them.
type listenerConfig struct {
	certFile, keyFile string
	maxHeaderBytes    int
	// The client timeouts; zero means the proxy's defaults.
	headerTimeout, idleTimeout, writeTimeout time.Duration
}

func listenerConfigOf(r *v1alpha1.Rollout) listenerConfig {
	var lc listenerConfig
	if ps := r.Spec.Proxy; ps != nil {
		lc.maxHeaderBytes = int(ps.MaxRequestHeaderBytes)
		if t := ps.Timeouts; t != nil {
			lc.headerTimeout, _ = spec.ParseDuration(t.ClientHeader)
			lc.idleTimeout, _ = spec.ParseDuration(t.KeepAlive)
			lc.writeTimeout, _ = spec.ParseDuration(t.Send)
		}
		if ps.TLS != nil {
			lc.certFile, lc.keyFile = ps.TLS.CertFile, ps.TLS.KeyFile
		}
	}
	return lc
}

// serverConfig loads the certificate, if any. Its error names the spec field.
func (lc listenerConfig) serverConfig(log *slog.Logger) (proxy.ServerConfig, error) {
	sc := proxy.ServerConfig{MaxHeaderBytes: lc.maxHeaderBytes, Logger: log,
		HeaderTimeout: lc.headerTimeout, IdleTimeout: lc.idleTimeout, WriteTimeout: lc.writeTimeout}
	if lc.certFile != "" {
		cr, err := proxy.NewCertReloader(lc.certFile, lc.keyFile, log)
		if err != nil {
			return sc, &spec.FieldError{Path: "spec.proxy.tls", Value: lc.certFile, Msg: "cannot load: " + err.Error()}
		}
		sc.TLS = cr
	}
	return sc, nil
}

// routingExtras adds the canary's trusted sources, stickiness and mirror to t. addPool
// makes sure a revision has a pool in t.
func routingExtras(r *v1alpha1.Rollout, t *proxy.Table, addPool func(rev int64)) {
	c := r.Spec.Strategy.Canary
	if c == nil {
		return
	}
	if tr := c.TrafficRouting; tr != nil {
		for _, s := range tr.TrustedSources {
			if p, err := netip.ParsePrefix(s); err == nil {
				t.TrustedSources = append(t.TrustedSources, p)
			}
		}
	}
	if st := c.Stickiness; st != nil {
		t.Sticky = &proxy.Sticky{}
		if st.Header != nil {
			t.Sticky.Header = st.Header.Name
		}
		if st.Cookie != nil {
			t.Sticky.Cookie = st.Cookie.Name
			t.Sticky.CookieMaxAge = time.Duration(st.Cookie.MaxAgeSeconds) * time.Second
		}
	}
	if m := c.Mirror; m != nil && r.Status.CanaryRevision != 0 && r.Status.CanaryRevision != r.Status.StableRevision {
		t.Mirror = &proxy.Mirror{Revision: r.Status.CanaryRevision, Percent: m.Percentage,
			MaxConcurrent: int(m.MaxConcurrent), MaxBodyBytes: m.MaxBodyBytes}
		addPool(r.Status.CanaryRevision)
	}
}

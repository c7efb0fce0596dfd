package cli

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/pflag"

	"ramp.dev/ramp/api/v1alpha1"
	promprovider "ramp.dev/ramp/internal/analysis/prometheus"
)

// prometheusFlags are how the controller reaches its own Prometheus (--prometheus-address, and
// a rollout's ramp.dev/prometheus-address): the access settings of an AnalysisTemplate's
// prometheus provider, from files so that a mounted Secret can hold them.
type prometheusFlags struct {
	bearerTokenFile    string
	username           string
	passwordFile       string
	caFile             string
	insecureSkipVerify bool
	sigv4Region        string
}

func (p *prometheusFlags) add(f *pflag.FlagSet) {
	f.StringVar(&p.bearerTokenFile, "prometheus-bearer-token-file", "", "file holding the bearer token sent to Prometheus (read at each request, so a rotated token counts)")
	f.StringVar(&p.username, "prometheus-username", "", "basic auth user name for Prometheus (with --prometheus-password-file)")
	f.StringVar(&p.passwordFile, "prometheus-password-file", "", "file holding the basic auth password for Prometheus (read at each request)")
	f.StringVar(&p.caFile, "prometheus-ca-file", "", "PEM file of the CA that signed Prometheus's certificate (default: the system's CAs)")
	f.BoolVar(&p.insecureSkipVerify, "prometheus-insecure-skip-verify", false, "do not verify Prometheus's certificate (testing only)")
	f.StringVar(&p.sigv4Region, "prometheus-sigv4-region", "", "sign requests with AWS SigV4 for Amazon Managed Service for Prometheus in this region, with the AWS default credentials (IRSA, environment)")
}

// prometheusFlagNames are what errors about the settings call them.
var prometheusFlagNames = promprovider.TransportOptions{
	Names: map[string]string{
		"bearerTokenFile":        "--prometheus-bearer-token-file",
		"a bearer token":         "--prometheus-bearer-token-file",
		"basicAuth":              "basic auth",
		"basicAuth.username":     "--prometheus-username",
		"basicAuth.passwordFile": "--prometheus-password-file",
		"tlsConfig":              "TLS",
		"tlsConfig.caFile":       "--prometheus-ca-file",
		"sigv4":                  "--prometheus-sigv4-region",
		"sigv4.region":           "--prometheus-sigv4-region",
	},
	NoCredentials: "the controller sends no credentials: start it with --prometheus-bearer-token-file, --prometheus-username and --prometheus-password-file, or --prometheus-sigv4-region",
	UnknownCA:     "start the controller with --prometheus-ca-file set to the CA that signed it",
}

// metric is the flags as the access settings of a prometheus metric.
func (p *prometheusFlags) metric() (v1alpha1.PrometheusMetric, error) {
	var pm v1alpha1.PrometheusMetric
	switch {
	case p.passwordFile != "" && p.username == "":
		return pm, errors.New("--prometheus-password-file: is set without --prometheus-username")
	case p.username != "" && p.passwordFile == "":
		return pm, errors.New("--prometheus-username: is set without --prometheus-password-file")
	case p.username != "" && p.bearerTokenFile != "":
		return pm, errors.New("--prometheus-bearer-token-file and --prometheus-username: are both set; Prometheus takes one Authorization header, set one")
	}
	pm.BearerTokenFile = p.bearerTokenFile
	if p.username != "" {
		pm.BasicAuth = &v1alpha1.PrometheusBasicAuth{Username: p.username, PasswordFile: p.passwordFile}
	}
	if p.caFile != "" || p.insecureSkipVerify {
		pm.TLSConfig = &v1alpha1.PrometheusTLSConfig{CAFile: p.caFile, InsecureSkipVerify: p.insecureSkipVerify}
	}
	if p.sigv4Region != "" {
		pm.SigV4 = &v1alpha1.PrometheusSigV4{Region: p.sigv4Region}
	}
	return pm, nil
}

// transport returns the round tripper of the controller's requests to Prometheus; an error
// names the flag that cannot be used.
func (p *prometheusFlags) transport(prov *promprovider.Provider) (http.RoundTripper, error) {
	pm, err := p.metric()
	if err != nil {
		return nil, err
	}
	return prov.Transport(pm, prometheusFlagNames)
}

// auth describes the settings for the controller's log: what is sent and from where, never a
// secret.
func (p *prometheusFlags) auth() string {
	s := "none"
	switch {
	case p.bearerTokenFile != "":
		s = "bearer token from " + p.bearerTokenFile
	case p.username != "":
		s = fmt.Sprintf("basic auth as %q, password from %s", p.username, p.passwordFile)
	case p.sigv4Region != "":
		s = "SigV4 in " + p.sigv4Region
	}
	switch {
	case p.insecureSkipVerify:
		s += "; TLS certificate not verified"
	case p.caFile != "":
		s += "; CA from " + p.caFile
	}
	return s
}

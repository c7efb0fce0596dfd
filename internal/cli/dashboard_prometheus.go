package cli

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"ramp.dev/ramp/internal/analysis/trafficmetrics"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/kube"
)

// dashboardProm is where `ramp dashboard` reads the charts' series: a Prometheus address
// reachable from the user's machine, or a Service reached through the API server's proxy.
type dashboardProm struct {
	address string // --prometheus-address
	service string // --prometheus-service NAMESPACE/NAME[:PORT]
}

// checkPrometheusAddress checks a --prometheus-address value.
func checkPrometheusAddress(flag, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL, such as http://prometheus.monitoring:9090", flag, v)
	}
	return nil
}

// promService is a Service named NAMESPACE/NAME[:PORT].
type promService struct {
	Namespace, Name, Port string
}

// parsePromService parses a --prometheus-service value: NAMESPACE/NAME, or NAMESPACE/NAME:PORT
// with PORT a number or the name of one of the Service's ports.
func parsePromService(v string) (promService, error) {
	bad := func(why string) (promService, error) {
		return promService{}, fmt.Errorf("--prometheus-service: %q %s; want NAMESPACE/NAME[:PORT], such as monitoring/prometheus:9090", v, why)
	}
	ns, rest, ok := strings.Cut(v, "/")
	if !ok {
		return bad("has no namespace")
	}
	name, port, hasPort := strings.Cut(rest, ":")
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return bad("has no valid namespace (" + errs[0] + ")")
	}
	if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
		return bad("has no valid Service name (" + errs[0] + ")")
	}
	if hasPort {
		if n, err := strconv.Atoi(port); err == nil {
			if errs := validation.IsValidPortNum(n); len(errs) > 0 {
				return bad("has no valid port (" + errs[0] + ")")
			}
		} else if errs := validation.IsValidPortName(port); len(errs) > 0 {
			return bad("has no valid port (" + errs[0] + ")")
		}
	}
	return promService{Namespace: ns, Name: name, Port: port}, nil
}

// proxyPath is the path of the Service's HTTP proxy on the API server, under which the
// Prometheus HTTP API answers (as `kubectl proxy` serves it).
func (s promService) proxyPath() string {
	n := s.Name
	if s.Port != "" {
		n += ":" + s.Port
	}
	return "/api/v1/namespaces/" + s.Namespace + "/services/" + n + "/proxy"
}

// check checks the flags, before anything starts.
func (p dashboardProm) check() error {
	if p.address != "" && p.service != "" {
		return errors.New("--prometheus-address and --prometheus-service name two Prometheus servers: give one")
	}
	if p.address != "" {
		return checkPrometheusAddress("--prometheus-address", p.address)
	}
	if p.service != "" {
		_, err := parsePromService(p.service)
		return err
	}
	return nil
}

// client returns the Prometheus client the flags name; nil without either flag. cfg is the
// kubeconfig's connection, for --prometheus-service (nil: read it then).
func (a *app) dashboardPromClient(p dashboardProm, cfg func() (*rest.Config, error)) (*trafficmetrics.Client, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	switch {
	case p.address != "":
		return trafficmetrics.NewClient(p.address, nil)
	case p.service != "":
		s, _ := parsePromService(p.service)
		c, err := cfg()
		if err != nil {
			return nil, err
		}
		rt, err := rest.TransportFor(c)
		if err != nil {
			return nil, fmt.Errorf("--prometheus-service: kubeconfig transport: %w", err)
		}
		host, err := apiServerURL(c)
		if err != nil {
			return nil, err
		}
		return trafficmetrics.NewClient(strings.TrimSuffix(host, "/")+s.proxyPath(), rt)
	}
	return nil, nil
}

// apiServerURL is the API server's base URL of cfg (with its path prefix, if any).
func apiServerURL(cfg *rest.Config) (string, error) {
	u, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return "", fmt.Errorf("--prometheus-service: kubeconfig server %q: %w", cfg.Host, err)
	}
	return u.String(), nil
}

// seriesControl adds the charts' series to a control contract.
type seriesControl struct {
	control.Control
	control.SeriesSource
}

// withSeries gives ctrl its series from prom or from a rollout's ramp.dev/prometheus-address
// annotation when it can be reached from here; without either, the series answer says which
// flag to pass.
func withSeries(ctrl control.Control, prom *trafficmetrics.Client) control.Control {
	return seriesControl{Control: ctrl, SeriesSource: &kube.PromSeries{Get: ctrl.Get, Prometheus: prom,
		Annotated: func(addr string) (*trafficmetrics.Client, error) {
			if err := checkPrometheusAddress("annotation "+kube.AnnotationPrometheusAddress, addr); err != nil {
				return nil, err
			}
			return trafficmetrics.NewClient(addr, nil)
		}}}
}

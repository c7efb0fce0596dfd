// Package trafficmetrics answers ramp's builtin request metrics (error-rate, request-count,
// request-rate, latency-p50/p95/p99) in Kubernetes mode, where there is no ramp proxy, with
// PromQL over the metrics the traffic router already exports to Prometheus:
//
//   - Istio: istio_requests_total and istio_request_duration_milliseconds_bucket, as reported
//     by the destination's sidecar (reporter="destination"), selected by the revision's
//     Service (destination_service_namespace, destination_service_name);
//   - NGINX ingress (ingress-nginx): nginx_ingress_controller_requests and
//     nginx_ingress_controller_request_duration_seconds_bucket, selected by namespace and
//     ingress; ingress-nginx names the canary backend in the canary label of the requests it
//     sent there, and leaves it empty for the others.
//
// It also reads the cumulative request and error counters that Kubernetes mode feeds the
// sequential judge with. Queries go through the Prometheus HTTP API
// (github.com/prometheus/client_golang/api).
package trafficmetrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// The routers whose metrics ramp reads, by their name in spec.strategy.canary.trafficRouting.
const (
	Istio = "istio"
	Nginx = "nginx"
)

// Routers lists the routers whose metrics ramp can read.
func Routers() []string { return []string{Istio, Nginx} }

// requestMetrics are the builtin metrics a router's metrics (or the app's request series)
// answer, in the builtin provider's order; appMetrics those only the app's own series
// (spec.appMetrics) and kube-state-metrics' and cAdvisor's answer.
var (
	requestMetrics = []string{"error-rate", "request-count", "request-rate", "latency-p50", "latency-p95", "latency-p99"}
	appMetrics     = []string{"first-token-p50", "first-token-p95", "first-token-p99", "restarts", "cpu", "memory"}
	metrics        = append(slices.Clone(requestMetrics), appMetrics...)
)

// Metrics lists the builtin metrics that trafficmetrics measures.
func Metrics() []string { return slices.Clone(metrics) }

// RequestMetrics lists the builtin metrics a router's own metrics answer.
func RequestMetrics() []string { return slices.Clone(requestMetrics) }

// Supported reports whether the builtin metric can be measured from Prometheus series.
func Supported(metric string) bool { return slices.Contains(metrics, metric) }

// IsRequestMetric reports whether the builtin metric counts requests (a router's metrics or
// the app's request series answer it).
func IsRequestMetric(metric string) bool { return slices.Contains(requestMetrics, metric) }

// Selector picks one revision's requests in a router's metrics.
type Selector struct {
	// Router is Istio or Nginx.
	Router string
	// Namespace is the namespace of the revision's Service (Istio) or Ingresses (NGINX).
	Namespace string
	// Service is the Service that selects the revision (Istio's destination_service_name).
	Service string
	// Ingresses are the Ingresses whose requests count (NGINX: the stable Ingress and the
	// canary Ingress beside it).
	Ingresses []string
	// Canary picks, for NGINX, the requests ingress-nginx sent to the canary backend (canary
	// label set); false picks the others.
	Canary bool
	// App selects the revision's pods in the app's own series, kube-state-metrics' and
	// cAdvisor's (Router App, or beside a router's metrics for the metrics only they give);
	// nil means the rollout names none (spec.appMetrics).
	App *AppSelector
}

// Validate reports a selector that cannot select anything.
func (s Selector) Validate() error {
	switch s.Router {
	case Istio:
		if s.Namespace == "" || s.Service == "" {
			return errors.New("istio metrics need the revision's namespace and Service")
		}
	case Nginx:
		if s.Namespace == "" || len(s.Ingresses) == 0 {
			return errors.New("nginx metrics need the namespace and the Ingress")
		}
	case App:
		if s.App == nil {
			return errors.New("the app's series need spec.appMetrics")
		}
	default:
		return fmt.Errorf("router %q exports no metrics ramp reads; one of %s does", s.Router, strings.Join(Routers(), ", "))
	}
	if s.App != nil && (s.Namespace == "" || s.App.Hash == "" || s.App.PodPrefix == "") {
		return errors.New("the app's series need the revision's namespace, pod-template-hash and ReplicaSet")
	}
	return nil
}

// matchers are the label matchers of the revision's series.
func (s Selector) matchers() string {
	if s.Router == Istio {
		return fmt.Sprintf(`reporter="destination", destination_service_namespace=%s, destination_service_name=%s`, quote(s.Namespace), quote(s.Service))
	}
	ing := make([]string, len(s.Ingresses))
	for i, n := range s.Ingresses {
		ing[i] = regexpQuote(n)
	}
	canary := `canary=""`
	if s.Canary {
		canary = `canary!=""`
	}
	return fmt.Sprintf(`namespace=%s, ingress=~%s, %s`, quote(s.Namespace), quote(strings.Join(ing, "|")), canary)
}

// Requests is the selector of the revision's request counters.
func (s Selector) Requests() string {
	switch s.Router {
	case Istio:
		return "istio_requests_total{" + s.matchers() + "}"
	case App:
		return s.App.Series.Requests + "{" + s.appMatchers() + "}"
	}
	return "nginx_ingress_controller_requests{" + s.matchers() + "}"
}

// Errors are the selectors of the revision's 5xx request counters (the sum of all).
func (s Selector) Errors() []string {
	switch s.Router {
	case Istio:
		return []string{`istio_requests_total{` + s.matchers() + `, response_code=~"5.."}`}
	case App:
		return s.appErrors()
	}
	return []string{`nginx_ingress_controller_requests{` + s.matchers() + `, status=~"5.."}`}
}

// Buckets is the selector of the revision's request duration histogram buckets, and the
// factor that turns its unit into seconds.
func (s Selector) Buckets() (string, float64) {
	switch s.Router {
	case Istio:
		return "istio_request_duration_milliseconds_bucket{" + s.matchers() + "}", 0.001
	case App:
		return s.App.Series.Duration + "_bucket{" + s.appMatchers() + "}", 1
	}
	return "nginx_ingress_controller_request_duration_seconds_bucket{" + s.matchers() + "}", 1
}

func quote(s string) string { return strconv.Quote(s) }

// regexpQuote escapes RE2 metacharacters (Kubernetes names have none but '.').
func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// DefaultTimeout bounds one query.
const DefaultTimeout = 30 * time.Second

// Client queries one Prometheus.
type Client struct {
	address string
	api     promv1.API
}

// NewClient returns a client of the Prometheus at address (http://host:port). A nil
// transport means a clone of http.DefaultTransport.
func NewClient(address string, transport http.RoundTripper) (*Client, error) {
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	c, err := promapi.NewClient(promapi.Config{Address: address, RoundTripper: transport})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", address, err)
	}
	return &Client{address: address, api: promv1.NewAPI(c)}, nil
}

// scalar runs an instant query at now that gives at most one series; none is ok false.
func (c *Client) scalar(ctx context.Context, query string, now time.Time) (v float64, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	res, _, _, err := c.api.Query(ctx, query, now, promv1.WithTimeout(DefaultTimeout))
	if err != nil {
		return 0, false, fmt.Errorf("query %s at %s: %w", query, c.address, err)
	}
	switch r := res.(type) {
	case model.Vector:
		switch len(r) {
		case 0:
			return 0, false, nil
		case 1:
			v := float64(r[0].Value)
			return v, !math.IsNaN(v), nil
		}
		return 0, false, fmt.Errorf("query %s gave %d series, want one", query, len(r))
	case *model.Scalar:
		v := float64(r.Value)
		return v, !math.IsNaN(v), nil
	}
	return 0, false, fmt.Errorf("query %s gave a %s, want a vector", query, res.Type())
}

// Value is one measurement: Result, or Inconclusive with Text saying why.
type Value struct {
	Result       float64
	Inconclusive bool
	Text         string
}

// Query is one builtin metric over a window.
type Query struct {
	// Metric is one of Metrics().
	Metric string
	// Window is how far back the measurement looks, up to Now; rounded up to whole seconds,
	// at least one.
	Window time.Duration
	// Now is the time of the measurement.
	Now time.Time
	// MinRequests is the least number of requests the window needs; with fewer the value is
	// Inconclusive. Zero means 1 for error-rate and latency-*, none for request-count and
	// request-rate.
	MinRequests int64
}

// Measure measures q for the revision s selects.
func (c *Client) Measure(ctx context.Context, q Query, s Selector) (Value, error) {
	if !Supported(q.Metric) {
		return Value{}, fmt.Errorf("builtin metric %q cannot be read from Prometheus; these can: %s", q.Metric, strings.Join(metrics, ", "))
	}
	if err := s.Validate(); err != nil {
		return Value{}, err
	}
	if why := s.Unsupported(q.Metric); why != "" {
		return Value{}, errors.New(why)
	}
	secs := max(int64(math.Ceil(q.Window.Seconds())), 1)
	window := fmt.Sprintf("%ds", secs)
	increase := func(sel string) string { return fmt.Sprintf("increase(%s[%s])", sel, window) }

	switch q.Metric {
	case "restarts":
		v, _, err := c.scalar(ctx, "sum("+s.Restarts()+")", q.Now)
		if err != nil {
			return Value{}, err
		}
		return Value{Result: v, Text: fmt.Sprintf("%s restarts", num(v))}, nil
	case "cpu":
		v, ok, err := c.scalar(ctx, "sum(rate("+s.CPU()+"["+window+"]))", q.Now)
		if err != nil {
			return Value{}, err
		}
		if !ok {
			return Value{Inconclusive: true, Text: "no data: no CPU series for " + describe(s)}, nil
		}
		return Value{Result: v, Text: fmt.Sprintf("%s cores (over %s)", num(v), window)}, nil
	case "memory":
		v, ok, err := c.scalar(ctx, "sum("+s.Memory()+")", q.Now)
		if err != nil {
			return Value{}, err
		}
		if !ok {
			return Value{Inconclusive: true, Text: "no data: no memory series for " + describe(s)}, nil
		}
		return Value{Result: v, Text: fmt.Sprintf("%s bytes (%.1f MiB)", num(v), v/(1<<20))}, nil
	}

	total, _, err := c.scalar(ctx, "sum("+increase(s.Requests())+")", q.Now)
	if err != nil {
		return Value{}, err
	}
	minReq := q.MinRequests
	ratio := q.Metric == "error-rate" || strings.Contains(q.Metric, "-p")
	if minReq == 0 && ratio {
		minReq = 1
	}
	if total < float64(minReq) || (ratio && total <= 0) {
		return Value{Inconclusive: true, Text: fmt.Sprintf("only %s requests in %s (min %d)", num(total), window, minReq)}, nil
	}
	switch q.Metric {
	case "error-rate":
		if err := c.checkLabelled(ctx, q.Now, s); err != nil {
			return Value{}, err
		}
		errs, _, err := c.scalar(ctx, sumOf(s.Errors(), increase), q.Now)
		if err != nil {
			return Value{}, err
		}
		r := errs / total
		return Value{Result: r, Text: fmt.Sprintf("%s (%s/%s 5xx in %s)", num(r), num(errs), num(total), window)}, nil
	case "request-count":
		return Value{Result: total, Text: fmt.Sprintf("%s requests in %s", num(total), window)}, nil
	case "request-rate":
		r := total / float64(secs)
		return Value{Result: r, Text: fmt.Sprintf("%s req/s (%s in %s)", num(r), num(total), window)}, nil
	}
	// latency-pNN or first-token-pNN
	pct := q.Metric[len(q.Metric)-3:]
	n, _ := strconv.Atoi(pct[1:])
	buckets, scale := s.Buckets()
	what := "request duration"
	if strings.HasPrefix(q.Metric, "first-token-") {
		buckets, scale, what = s.FirstTokenBuckets(), 1, "first-token"
	}
	query := fmt.Sprintf("histogram_quantile(%g, sum by (le) (%s))", float64(n)/100, increase(buckets))
	if scale != 1 {
		query = fmt.Sprintf("%s * %g", query, scale)
	}
	v, ok, err := c.scalar(ctx, query, q.Now)
	if err != nil {
		return Value{}, err
	}
	if !ok {
		return Value{Inconclusive: true, Text: fmt.Sprintf("no data: no %s histogram for %s", what, describe(s))}, nil
	}
	return Value{Result: v, Text: fmt.Sprintf("%ss (%s of %s requests in %s)", num(v), pct, num(total), window)}, nil
}

// Unsupported says why s cannot answer the builtin metric; empty when it can.
func (s Selector) Unsupported(metric string) string {
	switch {
	case strings.HasPrefix(metric, "first-token-"):
		if s.App == nil {
			return fmt.Sprintf("builtin metric %s is read from the app's first-token histogram: set spec.appMetrics.firstToken", metric)
		}
		if s.App.Series.FirstToken == "" {
			return fmt.Sprintf("builtin metric %s needs the app's first-token histogram: set spec.appMetrics.firstToken", metric)
		}
	case metric == "restarts" || metric == "cpu" || metric == "memory":
		if s.App == nil {
			return fmt.Sprintf("builtin metric %s is read from kube-state-metrics' and cAdvisor's series of the revision's pods: set spec.appMetrics", metric)
		}
	}
	return ""
}

// checkLabelled fails when some of the revision's request series carry neither a status
// nor a code label: their errors could not be counted.
func (c *Client) checkLabelled(ctx context.Context, now time.Time, s Selector) error {
	sel := s.Unlabelled()
	if sel == "" {
		return nil
	}
	n, _, err := c.scalar(ctx, "count("+sel+")", now)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%s has %s series with neither a status nor a code label, whose errors cannot be told: set spec.appMetrics.statusLabel to the label that holds the HTTP status", s.App.Series.Requests, num(n))
	}
	return nil
}

// Counts reads the revision's cumulative request and 5xx counters at now (zero when it has
// no series yet).
func (c *Client) Counts(ctx context.Context, now time.Time, s Selector) (Counts, error) {
	if err := s.Validate(); err != nil {
		return Counts{}, err
	}
	if err := c.checkLabelled(ctx, now, s); err != nil {
		return Counts{}, err
	}
	var out Counts
	var err error
	if out.Requests, _, err = c.scalar(ctx, "sum("+s.Requests()+")", now); err != nil {
		return Counts{}, err
	}
	if out.Errors, _, err = c.scalar(ctx, sumOf(s.Errors(), identity), now); err != nil {
		return Counts{}, err
	}
	return out, nil
}

// describe names what s selects, for messages.
func describe(s Selector) string {
	if s.Router == App || (s.Router == "" && s.App != nil) {
		return fmt.Sprintf("the pods of %s in %s (pod-template-hash %s)", strings.TrimSuffix(s.App.PodPrefix, "-"), s.Namespace, s.App.Hash)
	}
	if s.Router == Istio {
		return fmt.Sprintf("Service %s/%s (istio)", s.Namespace, s.Service)
	}
	side := "stable"
	if s.Canary {
		side = "canary"
	}
	return fmt.Sprintf("the %s backend of Ingress %s/%s (nginx)", side, s.Namespace, strings.Join(s.Ingresses, ","))
}

// num prints a measured value with 4 significant digits.
func num(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

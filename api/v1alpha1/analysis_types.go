package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// AnalysisTemplate is a reusable set of metrics that judge a revision.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=rat,categories=ramp
type AnalysisTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AnalysisTemplateSpec `json:"spec"`
}

// AnalysisTemplateList is a list of AnalysisTemplates.
//
// +kubebuilder:object:root=true
type AnalysisTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AnalysisTemplate `json:"items"`
}

// AnalysisTemplateSpec lists metrics and the arguments they take.
type AnalysisTemplateSpec struct {
	Metrics []Metric   `json:"metrics"`
	Args    []Argument `json:"args,omitempty"`
}

// Argument is a template argument; a nil Value must be given by the rollout.
type Argument struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

// Metric is one measurement, taken count times every interval, judged by conditions.
// Names and meanings follow Argo Rollouts.
type Metric struct {
	Name string `json:"name"`
	// Interval is the time between measurements ("10s" or seconds). Nil means measure once
	// (count is then 1).
	Interval *intstr.IntOrString `json:"interval,omitempty"`
	// InitialDelay waits before the first measurement. Nil means none.
	InitialDelay *intstr.IntOrString `json:"initialDelay,omitempty"`
	// WaitForData bounds how long a measurement the provider cannot judge for lack of data
	// (too few requests on a revision, a counter that has not moved yet, no series) is taken
	// again instead of counting as inconclusive: each measurement may be retried, every
	// interval (at most every second), until WaitForData past the time it was due; only then
	// does an inconclusive one count. Nil means 30s; "0" turns the wait off (an inconclusive
	// first look counts at once).
	WaitForData *intstr.IntOrString `json:"waitForData,omitempty"`
	// Count is the number of measurements. Nil means 1 without an interval, and unbounded
	// (until the run is stopped) with one.
	Count *int32 `json:"count,omitempty"`
	// SuccessCondition is an expression over `result` (and, with a baseline, `baseline`) that
	// is true for a successful measurement. Empty means any measurement that is not a failure
	// is successful.
	SuccessCondition string `json:"successCondition,omitempty"`
	// FailureCondition is an expression that is true for a failed measurement. Empty means a
	// measurement fails when successCondition is false.
	FailureCondition string `json:"failureCondition,omitempty"`
	// FailureLimit is how many failed measurements are tolerated; the run fails when there
	// are more. Zero means none is tolerated.
	// +kubebuilder:validation:Minimum=0
	FailureLimit int32 `json:"failureLimit,omitempty"`
	// InconclusiveLimit is how many inconclusive measurements are tolerated before the run is
	// Inconclusive. Zero means none is tolerated.
	// +kubebuilder:validation:Minimum=0
	InconclusiveLimit int32 `json:"inconclusiveLimit,omitempty"`
	// ConsecutiveErrorLimit is how many provider errors in a row are tolerated before the
	// run ends as Error. Nil means 4.
	ConsecutiveErrorLimit *int32 `json:"consecutiveErrorLimit,omitempty"`
	// DryRun records the metric's results without letting them decide the run.
	DryRun bool `json:"dryRun,omitempty"`
	// InconclusivePolicy says what an Inconclusive metric (no data, too few requests, or
	// neither condition true, beyond inconclusiveLimit) does to the run: Pause (the run is
	// Inconclusive and the rollout waits for a human), Fail (the metric fails, and the rollout
	// aborts) or Ignore (inconclusive measurements are recorded but do not decide; the metric
	// goes on and ends Successful after count measurements). Empty means Pause.
	InconclusivePolicy InconclusivePolicy `json:"inconclusivePolicy,omitempty"`
	// Provider is exactly one provider.
	Provider MetricProvider `json:"provider"`
}

// InconclusivePolicy says what an Inconclusive metric does to its analysis run.
type InconclusivePolicy string

const (
	// InconclusivePause makes the run Inconclusive: the rollout pauses for a human.
	InconclusivePause InconclusivePolicy = "Pause"
	// InconclusiveFail makes the metric Failed: the rollout aborts.
	InconclusiveFail InconclusivePolicy = "Fail"
	// InconclusiveIgnore records inconclusive measurements without letting them decide.
	InconclusiveIgnore InconclusivePolicy = "Ignore"
)

// MetricProvider is exactly one provider; the JSON name of the field that is set picks the
// provider by name (builtin, scrape, prometheus, web, command, job).
type MetricProvider struct {
	// Builtin reads ramp's own per-revision measurements (local mode).
	Builtin *BuiltinMetric `json:"builtin,omitempty"`
	// Scrape reads the revision's instances' own /metrics (local mode).
	Scrape *ScrapeMetric `json:"scrape,omitempty"`
	// Prometheus runs a PromQL query against a Prometheus server.
	Prometheus *PrometheusMetric `json:"prometheus,omitempty"`
	// Web reads a number from a JSON answer of an HTTP endpoint.
	Web *WebMetric `json:"web,omitempty"`
	// Command runs a program; exit status 0 is the result 1, any other 0 (local mode).
	Command *CommandMetric `json:"command,omitempty"`
	// Job runs a Kubernetes Job; success is the result 1, failure 0 (Kubernetes mode).
	Job *JobMetric `json:"job,omitempty"`
}

// BuiltinMetric reads ramp's own per-revision measurements: the proxy's request metrics and
// the supervisor's instance metrics.
type BuiltinMetric struct {
	// Metric is one of: error-rate (share of 5xx among responses), request-count,
	// request-rate (per second), latency-p50, latency-p95, latency-p99 (seconds),
	// ttfb-p50, ttfb-p95, ttfb-p99 (seconds, time to the response headers),
	// first-token-p50, first-token-p95, first-token-p99 (seconds, time to the first byte of
	// the response body: a streamed answer's first token), restarts, readiness-failures,
	// cpu (cores), memory (bytes).
	// +kubebuilder:validation:Enum=error-rate;request-count;request-rate;latency-p50;latency-p95;latency-p99;ttfb-p50;ttfb-p95;ttfb-p99;first-token-p50;first-token-p95;first-token-p99;restarts;readiness-failures;cpu;memory
	Metric string `json:"metric"`
	// Window is how far back the measurement looks ("30s"). Nil means since the analysis run
	// started.
	Window *intstr.IntOrString `json:"window,omitempty"`
	// Baseline also measures the baseline revision (stable, or the old active) and exposes
	// it to the conditions as `baseline`. False means `baseline` is not set.
	Baseline bool `json:"baseline,omitempty"`
	// MinRequests is the least number of requests a request metric needs; with fewer the
	// measurement is Inconclusive. Zero means 1.
	MinRequests int32 `json:"minRequests,omitempty"`
}

// ScrapeMetric reads a metric from the Prometheus text endpoint of each ready instance of the
// revision (local mode) and sums it over the instances. A counter (and a histogram's or
// summary's _count and _sum) is read as its increase since the analysis run started; a gauge
// or an untyped metric as its current value.
type ScrapeMetric struct {
	// Metric is the metric name, e.g. chat_triage_total. NAME_count and NAME_sum read the
	// count and sum of a histogram or summary NAME. Required.
	Metric string `json:"metric"`
	// Labels are the label values a series must have to count (exact match). Empty means
	// every series of the metric.
	Labels map[string]string `json:"labels,omitempty"`
	// DivideBy makes the result a ratio: the selected sum divided by the sum of these series,
	// e.g. failed triage answers over all triage answers. Nil means the result is the sum.
	DivideBy *ScrapeSelector `json:"divideBy,omitempty"`
	// MinTotal is the least value the divideBy sum needs; below it the measurement is
	// Inconclusive (no data). Zero means 1. Only used with divideBy.
	MinTotal int32 `json:"minTotal,omitempty"`
	// Path is the metrics path on each instance. Empty means /metrics.
	Path string `json:"path,omitempty"`
	// Baseline also measures the baseline revision (stable, or the old active) and exposes
	// it to the conditions as `baseline`. False means `baseline` is not set.
	Baseline bool `json:"baseline,omitempty"`
	// Timeout bounds the scrape of one instance ("5s" or seconds). Nil means 5s.
	Timeout *intstr.IntOrString `json:"timeout,omitempty"`
}

// ScrapeSelector picks the series of a ratio's denominator.
type ScrapeSelector struct {
	// Metric is the metric name. Empty means the same metric as the numerator.
	Metric string `json:"metric,omitempty"`
	// Labels are the label values a series must have. Empty means every series.
	Labels map[string]string `json:"labels,omitempty"`
}

// PrometheusMetric runs a PromQL query over the Prometheus HTTP API. The query must give one
// series (or a scalar); no series or NaN is Inconclusive (no data), more than one an error.
//
// The query may use template variables: {{rollout}}, {{revision}}, {{role}} (canary,
// preview or active), {{namespace}}, {{service}}, {{interval}} (the metric's interval, e.g.
// 30s; 1m without one), {{podTemplateHash}} and {{baselinePodTemplateHash}} (the
// pod-template-hash label of the revision's pods and of the baseline's, Kubernetes mode) and
// {{args.NAME}}. Spaces inside the braces are allowed.
type PrometheusMetric struct {
	// Address is the URL of the Prometheus server, e.g. http://prometheus:9090. Required.
	Address string `json:"address"`
	// Query is the PromQL query. Required.
	Query string `json:"query"`
	// RangeQuery runs a range query and reduces the series to one value. Nil means an
	// instant query at the time of the measurement.
	RangeQuery *PrometheusRangeQuery `json:"rangeQuery,omitempty"`
	// Headers are sent with every request. Empty means none.
	Headers []WebMetricHeader `json:"headers,omitempty"`
	// BearerToken is sent as "Authorization: Bearer ...". Prefer BearerTokenFile,
	// BearerTokenEnv or BearerTokenSecretRef: this one is stored with the template. Empty
	// means none; at most one of the four may be set.
	BearerToken string `json:"bearerToken,omitempty"`
	// BearerTokenFile is a file holding the bearer token, read at every measurement. Empty
	// means none.
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`
	// BearerTokenEnv is the environment variable of ramp holding the bearer token. Empty
	// means none.
	BearerTokenEnv string `json:"bearerTokenEnv,omitempty"`
	// BearerTokenSecretRef is a key of a Secret in the rollout's namespace holding the bearer
	// token (Kubernetes mode only). Nil means none.
	BearerTokenSecretRef *SecretKeyRef `json:"bearerTokenSecretRef,omitempty"`
	// BasicAuth sends a user name and password (HTTP basic authentication). Nil means none.
	BasicAuth *PrometheusBasicAuth `json:"basicAuth,omitempty"`
	// TLSConfig sets the CA, client certificate and server name of an https address. Nil
	// means the system's CAs, no client certificate and the address's host name.
	TLSConfig *PrometheusTLSConfig `json:"tlsConfig,omitempty"`
	// SigV4 signs every request with AWS Signature Version 4, as Amazon Managed Service for
	// Prometheus wants. It cannot be set with basicAuth or a bearer token. Nil means unsigned.
	SigV4 *PrometheusSigV4 `json:"sigv4,omitempty"`
	// Timeout bounds one query ("30s" or seconds). Nil means 30s.
	Timeout *intstr.IntOrString `json:"timeout,omitempty"`
}

// SecretKeyRef names one key of a Secret in the rollout's namespace. Only Kubernetes mode
// can read it; local mode refuses it (use the File or Env form of the field instead).
type SecretKeyRef struct {
	// Name is the Secret's name. Required.
	Name string `json:"name"`
	// Key is the key in the Secret's data. Required.
	Key string `json:"key"`
}

// PrometheusBasicAuth is a user name and password for HTTP basic authentication. The
// password comes from exactly one of its four fields; each is read at every measurement.
type PrometheusBasicAuth struct {
	// Username is the user name. Required unless UsernameSecretRef is set.
	Username string `json:"username,omitempty"`
	// UsernameSecretRef is a Secret key holding the user name. Nil means Username.
	UsernameSecretRef *SecretKeyRef `json:"usernameSecretRef,omitempty"`
	// Password is the password, stored with the template: prefer one of the others.
	Password string `json:"password,omitempty"`
	// PasswordFile is a file holding the password.
	PasswordFile string `json:"passwordFile,omitempty"`
	// PasswordEnv is the environment variable of ramp holding the password.
	PasswordEnv string `json:"passwordEnv,omitempty"`
	// PasswordSecretRef is a Secret key holding the password (Kubernetes mode only).
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
}

// PrometheusTLSConfig is how ramp checks an https Prometheus and proves who it is. Each
// of the CA, the client certificate and its key comes from at most one of its fields.
type PrometheusTLSConfig struct {
	// CA is the PEM of the CAs that sign the server's certificate. Empty means the system's
	// CAs (unless CAFile or CASecretRef is set).
	CA string `json:"ca,omitempty"`
	// CAFile is a file holding the CAs' PEM.
	CAFile string `json:"caFile,omitempty"`
	// CASecretRef is a Secret key holding the CAs' PEM (Kubernetes mode only).
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`
	// Cert is the PEM of the client certificate. Empty means none (unless CertFile or
	// CertSecretRef is set); a certificate needs a key.
	Cert string `json:"cert,omitempty"`
	// CertFile is a file holding the client certificate's PEM.
	CertFile string `json:"certFile,omitempty"`
	// CertSecretRef is a Secret key holding the client certificate's PEM (Kubernetes mode
	// only).
	CertSecretRef *SecretKeyRef `json:"certSecretRef,omitempty"`
	// KeyFile is a file holding the client certificate's private key (PEM).
	KeyFile string `json:"keyFile,omitempty"`
	// KeySecretRef is a Secret key holding the client certificate's private key (Kubernetes
	// mode only).
	KeySecretRef *SecretKeyRef `json:"keySecretRef,omitempty"`
	// ServerName is the name the server's certificate must have. Empty means the address's
	// host.
	ServerName string `json:"serverName,omitempty"`
	// InsecureSkipVerify accepts any server certificate. False (the default) verifies it.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// PrometheusSigV4 signs requests with AWS Signature Version 4 for service "aps" (Amazon
// Managed Service for Prometheus). Credentials come from the AWS default chain (environment,
// shared files and profile, web identity as with IRSA, instance or task role) unless both
// secret refs are set.
type PrometheusSigV4 struct {
	// Region is the AWS region of the workspace, e.g. eu-west-1. Required.
	Region string `json:"region"`
	// RoleARN is a role to assume with the credentials found. Empty means none.
	RoleARN string `json:"roleARN,omitempty"`
	// Profile is the shared config profile. Empty means the default chain's (AWS_PROFILE).
	Profile string `json:"profile,omitempty"`
	// AccessKeySecretRef is a Secret key holding the access key ID (Kubernetes mode only;
	// with SecretKeySecretRef). Nil means the default chain.
	AccessKeySecretRef *SecretKeyRef `json:"accessKeySecretRef,omitempty"`
	// SecretKeySecretRef is a Secret key holding the secret access key (Kubernetes mode
	// only; with AccessKeySecretRef). Nil means the default chain.
	SecretKeySecretRef *SecretKeyRef `json:"secretKeySecretRef,omitempty"`
}

// PrometheusRangeQuery is the window of a range query and how its points become one value.
type PrometheusRangeQuery struct {
	// Range is how far back the query looks from the time of the measurement ("5m" or
	// seconds). Nil means 5m.
	Range *intstr.IntOrString `json:"range,omitempty"`
	// Step is the resolution ("15s" or seconds). Nil means range/60, at least 1s.
	Step *intstr.IntOrString `json:"step,omitempty"`
	// Reduce turns the points into one value: last, avg, min, max or sum. Empty means last.
	Reduce string `json:"reduce,omitempty"`
}

// WebMetricHeader is one HTTP request header.
type WebMetricHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// WebMetric calls an HTTP endpoint that answers JSON and picks the value with a JSONPath.
// The URL, headers and body may use the template variables of PrometheusMetric. A non-2xx
// answer is an error.
type WebMetric struct {
	// URL is the endpoint. Required.
	URL string `json:"url"`
	// Method is GET or POST. Empty means GET.
	Method string `json:"method,omitempty"`
	// Headers are sent with the request. Empty means none.
	Headers []WebMetricHeader `json:"headers,omitempty"`
	// Body is the request body (POST). Empty means none.
	Body string `json:"body,omitempty"`
	// JSONPath picks the value from the answer (RFC 9535, e.g. $.data.errorRate; Argo
	// Rollouts' "{$.data.errorRate}" form is accepted). It must select one number, a numeric
	// string or a boolean (true is 1, false 0). Empty means the whole answer.
	JSONPath string `json:"jsonPath,omitempty"`
	// Timeout bounds the request ("10s" or seconds). Nil means 10s.
	Timeout *intstr.IntOrString `json:"timeout,omitempty"`
}

// CommandMetric runs a program (local mode), e.g. a smoke test or a test suite against the
// preview or canary. Exit status 0 makes the result 1, any other status 0; the default
// successCondition is "result == 1". The program gets RAMP_ROLLOUT, RAMP_REVISION,
// RAMP_BASELINE_REVISION, RAMP_ROLE, RAMP_ADDR (the rollout's listen address),
// RAMP_PREVIEW_ADDR (blueGreen previewListen) and RAMP_INSTANCES (the revision's ready
// instances, host:port, comma-separated) in its environment.
type CommandMetric struct {
	// Command is the program: a path, or a name looked up in PATH. Required.
	Command string `json:"command"`
	// Args are the program's arguments.
	Args []string `json:"args,omitempty"`
	// Env is added to ramp's own environment.
	Env []EnvVar `json:"env,omitempty"`
	// WorkingDir is the program's working directory. Empty means ramp's.
	WorkingDir string `json:"workingDir,omitempty"`
	// Timeout bounds the run ("5m" or seconds); a program still running then is killed and
	// the measurement is an error. Nil means 10m.
	Timeout *intstr.IntOrString `json:"timeout,omitempty"`
}

// JobMetric runs a Kubernetes Job from a container image (Kubernetes mode only), as Argo
// Rollouts' job provider does: the Job succeeding is the result 1, failing 0; the default
// successCondition is "result == 1". The Job runs in the rollout's namespace and its
// container gets RAMP_ROLLOUT, RAMP_NAMESPACE, RAMP_REVISION, RAMP_BASELINE_REVISION,
// RAMP_ROLE, RAMP_ANALYSIS (the run's name) and RAMP_SERVICE (the Service of the revision
// under analysis: blueGreen's previewService before the switch, the canaryService of a
// canary) in its environment. Args may use the template variables of PrometheusMetric.
//
// It takes a short form (image, command, args, env) or, as Argo Rollouts' job metric, a full
// batch/v1 JobSpec in spec, whose pod template passes through as written: a service account
// (IRSA), env from Secrets, volumes, resources.
type JobMetric struct {
	// Metadata's labels and annotations are put on the Job object, as in Argo Rollouts. Nil
	// means none besides ramp's.
	Metadata *JobMetadata `json:"metadata,omitempty"`
	// Spec is the Job's batch/v1 JobSpec (the full form). ramp adds its RAMP_* variables to
	// each container's env, expands the template variables in each container's args, sets
	// activeDeadlineSeconds from timeout, and sets restartPolicy Never and backoffLimit 0 when
	// they are unset. Nil means the short form. Give spec or image, not both.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Spec *batchv1.JobSpec `json:"spec,omitempty"`
	// Image is the container image of the short form. Required without spec.
	Image string `json:"image,omitempty"`
	// Command is the short form's entrypoint. Empty means the image's.
	Command []string `json:"command,omitempty"`
	// Args are the short form's arguments. Empty means the image's.
	Args []string `json:"args,omitempty"`
	// Env is the short form's environment.
	Env []EnvVar `json:"env,omitempty"`
	// BackoffLimit is how many times a failed pod is retried. Nil means spec.backoffLimit,
	// else 0.
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
	// Timeout bounds the Job ("10m" or seconds; its activeDeadlineSeconds). Nil means 10m.
	Timeout *intstr.IntOrString `json:"timeout,omitempty"`
	// Labels are added to the Job's pod, e.g. to let a NetworkPolicy admit it to the
	// preview. Empty means none.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are added to the Job's pod, e.g. sidecar.istio.io/inject: "false", without
	// which a meshed Job never completes. Empty means none.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// JobMetadata is the labels and annotations of an analysis Job.
type JobMetadata struct {
	// Labels are added to the Job. Empty means none.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are added to the Job. Empty means none.
	Annotations map[string]string `json:"annotations,omitempty"`
}

package v1alpha1

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Rollout ships new revisions of one service with one strategy.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rro,categories=ramp
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=string,JSONPath=`.status.step`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`
// +kubebuilder:printcolumn:name="Real-Weight",type=integer,JSONPath=`.status.observedWeight`
// +kubebuilder:printcolumn:name="Stable",type=integer,JSONPath=`.status.stableRevision`
// +kubebuilder:printcolumn:name="Canary",type=integer,JSONPath=`.status.canaryRevision`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.activeRevision`,priority=1
// +kubebuilder:printcolumn:name="Preview",type=integer,JSONPath=`.status.previewRevision`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutSpec   `json:"spec"`
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollouts.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}

// RolloutSpec is what the user asks for.
type RolloutSpec struct {
	// Replicas is the number of instances of the stable revision. Nil means 1 in local mode;
	// in Kubernetes mode it must be nil: the Deployment's replicas count.
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// Listen is the address (host:port) the rollout's traffic arrives on in local mode; ramp's
	// proxy listens there. Empty means the rollout gets no proxy listener of its own.
	Listen string `json:"listen,omitempty"`

	// Template says how one instance of a revision runs in local mode. A change of the
	// template starts a new revision. Empty in Kubernetes mode, where WorkloadRef is set.
	Template Template `json:"template,omitempty"`

	// WorkloadRef points at the team's existing Deployment (Kubernetes mode): any change of
	// its pod template starts a rollout. Nil in local mode.
	WorkloadRef *WorkloadRef `json:"workloadRef,omitempty"`

	// Strategy is exactly one of rollingUpdate, canary or blueGreen.
	// +kubebuilder:validation:XValidation:rule="[has(self.rollingUpdate), has(self.canary), has(self.blueGreen)].filter(x, x).size() == 1",message="needs exactly one of rollingUpdate, canary or blueGreen"
	Strategy Strategy `json:"strategy"`

	// Paused stops the rollout from progressing; `ramp pause` sets it and `ramp resume`
	// clears it. False means the rollout progresses.
	Paused bool `json:"paused,omitempty"`

	// RestartAt asks for new instances of the stable revision: every instance of it that
	// started before this time is replaced, a few at a time, without a new revision and
	// without taking traffic from instances that are not replaced yet (`ramp restart` sets it
	// to the next whole second). While a revision rolls out the restart waits for the rollout
	// to end. Nil means no restart.
	RestartAt *metav1.Time `json:"restartAt,omitempty"`

	// RevisionHistoryLimit is how many old revisions are kept for `ramp undo`. Nil means 10.
	// +kubebuilder:validation:Minimum=0
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`

	// ProgressDeadlineSeconds is how long a revision may go without progress (an instance
	// that does not become ready, a step held up by a failing router or Service action)
	// before the rollout is aborted. Nil means 600 in local mode; in Kubernetes mode, the
	// Deployment's spec.progressDeadlineSeconds (which Kubernetes defaults to 600).
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// MinReadySeconds is how long a new instance must be ready before it counts as
	// available. Zero means available as soon as ready.
	// +kubebuilder:validation:Minimum=0
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`

	// Proxy tunes ramp's proxy on spec.listen (and the preview listener) in local mode. Nil
	// means plain HTTP, HTTP/1.1 to the instances, a 5 s connect timeout and no other.
	Proxy *ProxySpec `json:"proxy,omitempty"`

	// AppMetrics names the app's own Prometheus series (and kube-state-metrics' and
	// cAdvisor's) that Kubernetes mode reads for the builtin metrics and the judge. Nil means
	// none: only a router that exports request metrics (istio, nginx) feeds them.
	AppMetrics *AppMetrics `json:"appMetrics,omitempty"`

	// Webhooks are gate webhooks called at points of a rollout (before it starts, before a
	// weight increase, before and after promotion, on rollback). Empty means none.
	Webhooks []Webhook `json:"webhooks,omitempty"`

	// Notifications send the rollout's events to webhooks, Slack or Microsoft Teams. Empty
	// means none.
	Notifications []Notification `json:"notifications,omitempty"`
}

// ProxySpec tunes ramp's local-mode proxy for one rollout.
type ProxySpec struct {
	// TLS terminates TLS (HTTP/1.1 and HTTP/2) on the rollout's listeners. Nil means plain
	// HTTP.
	TLS *ProxyTLS `json:"tls,omitempty"`
	// UpstreamProtocol is how the proxy speaks to the instances: "http1" or "h2c" (HTTP/2
	// without TLS). Empty means http1. WebSocket upgrades always use HTTP/1.1.
	UpstreamProtocol string `json:"upstreamProtocol,omitempty"`
	// Timeouts bound the proxy's wait on an instance (connect, firstByte, idle) and on a
	// client (clientHeader, keepAlive, send). Nil means connect 5s, no other limit on an
	// instance, clientHeader 30s, keepAlive 75s and send 60s.
	Timeouts *ProxyTimeouts `json:"timeouts,omitempty"`
	// MaxRequestBodyBytes is the largest request body accepted; larger ones are answered
	// 413. Zero means no limit.
	MaxRequestBodyBytes int64 `json:"maxRequestBodyBytes,omitempty"`
	// MaxRequestHeaderBytes bounds a request's line and headers; larger ones are answered
	// 431. Zero means 65536.
	MaxRequestHeaderBytes int32 `json:"maxRequestHeaderBytes,omitempty"`
	// MaxResponseHeaderBytes bounds an instance's answer head (status line and headers);
	// a larger one is answered 502 and its connection closed. Zero means 65536.
	// +kubebuilder:validation:Minimum=0
	MaxResponseHeaderBytes int32 `json:"maxResponseHeaderBytes,omitempty"`
}

// ProxyTLS is a certificate and key file pair (PEM). The files are read again when they
// change, so a renewed certificate needs no restart.
type ProxyTLS struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// ProxyTimeouts are durations: a number of seconds or a Go duration ("30s", "2m").
type ProxyTimeouts struct {
	// Connect bounds connecting to an instance. Nil means 5s.
	Connect *intstr.IntOrString `json:"connect,omitempty"`
	// FirstByte bounds the wait for an instance's response headers; the client then gets
	// 504. Nil means 60s (as nginx's proxy_read_timeout): a streamed answer (SSE) sends its
	// headers at once however long it runs, so only an instance that never answers waits
	// this long. "0" means no limit, for answers that send no headers for minutes.
	FirstByte *intstr.IntOrString `json:"firstByte,omitempty"`
	// Idle bounds the silence between two pieces of a response body; the response is then
	// cut. Nil means no limit.
	Idle *intstr.IntOrString `json:"idle,omitempty"`
	// ClientHeader bounds reading a client request's line and headers, from their first
	// byte, as nginx's client_header_timeout; the connection is then closed. Nil means 30s.
	ClientHeader *intstr.IntOrString `json:"clientHeader,omitempty"`
	// KeepAlive bounds the wait for a client's next request on a kept-alive connection, as
	// nginx's keepalive_timeout; the connection is then closed. It never runs while an
	// answer is being sent. Nil means 75s.
	KeepAlive *intstr.IntOrString `json:"keepAlive,omitempty"`
	// Send bounds each write to a client, as nginx's send_timeout: a client that takes
	// nothing of its answer for this long is disconnected (and the instance's connection
	// released). It is no limit on a whole answer: a stream the client keeps reading runs
	// for as long as it lasts. Nil means 60s.
	Send *intstr.IntOrString `json:"send,omitempty"`
}

// Template is how the instances of one revision run: either processes that ramp starts and
// supervises, or fixed upstream addresses that something else started.
type Template struct {
	// Process runs each instance as a child process of ramp.
	Process *ProcessTemplate `json:"process,omitempty"`

	// Upstreams are fixed instance addresses (host:port) started by something else. When
	// set, Process must be empty and each address is one instance; replicas is ignored.
	Upstreams []string `json:"upstreams,omitempty"`

	// Kubernetes mode takes the pod template from the Deployment that spec.workloadRef names.
}

// WorkloadRef names the Deployment whose pod template a Rollout ships (Kubernetes mode).
type WorkloadRef struct {
	// APIVersion is "apps/v1". Empty means "apps/v1".
	// +kubebuilder:validation:Enum=apps/v1
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind is "Deployment". Empty means "Deployment".
	// +kubebuilder:validation:Enum=Deployment
	Kind string `json:"kind,omitempty"`
	// Name is the Deployment's name, in the Rollout's namespace.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// ProcessTemplate describes one child process.
type ProcessTemplate struct {
	// Command is the program to run: a path, or a name looked up in PATH.
	Command string `json:"command"`
	// Args are the program's arguments. $(PORT) in an argument is replaced by the instance's
	// port.
	Args []string `json:"args,omitempty"`
	// Env is added to ramp's own environment. PORT is always set to the instance's port.
	Env []EnvVar `json:"env,omitempty"`
	// WorkingDir is the process's working directory. Empty means ramp's working directory.
	WorkingDir string `json:"workingDir,omitempty"`
	// ReadinessProbe decides when an instance may receive traffic. Nil means an instance is
	// ready as soon as its port accepts TCP connections.
	ReadinessProbe *Probe `json:"readinessProbe,omitempty"`
	// StopSignal is sent to stop an instance: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 or
	// SIGUSR2. Empty means SIGTERM.
	// +kubebuilder:validation:Enum=SIGTERM;SIGINT;SIGQUIT;SIGHUP;SIGUSR1;SIGUSR2
	StopSignal string `json:"stopSignal,omitempty"`
	// TerminationGracePeriodSeconds is how long an instance has to exit after the stop signal
	// before it is killed. Nil means 30.
	TerminationGracePeriodSeconds *int32 `json:"terminationGracePeriodSeconds,omitempty"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// Probe is an HTTP readiness probe, as in Kubernetes.
type Probe struct {
	HTTPGet HTTPGetAction `json:"httpGet"`
	// InitialDelaySeconds is the wait before the first probe. Zero means probe at once.
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// PeriodSeconds is the time between probes. Zero means 1.
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
	// TimeoutSeconds bounds one probe. Zero means 1.
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// SuccessThreshold is how many successes in a row make an instance ready. Zero means 1.
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
	// FailureThreshold is how many failures in a row make a ready instance unready. Zero
	// means 3.
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// HTTPGetAction is the request a probe makes. A 2xx or 3xx answer is a success.
type HTTPGetAction struct {
	// Path is the request path. Empty means "/".
	Path string `json:"path,omitempty"`
	// Port is the port to probe. Zero means the instance's own port.
	Port int32 `json:"port,omitempty"`
}

// Strategy holds exactly one strategy.
type Strategy struct {
	RollingUpdate *RollingUpdateStrategy `json:"rollingUpdate,omitempty"`
	Canary        *CanaryStrategy        `json:"canary,omitempty"`
	BlueGreen     *BlueGreenStrategy     `json:"blueGreen,omitempty"`
}

// Name is the strategy's name as the spec spells it: canary, blueGreen or rollingUpdate;
// empty when none is set.
func (s Strategy) Name() string {
	switch {
	case s.Canary != nil:
		return "canary"
	case s.BlueGreen != nil:
		return "blueGreen"
	case s.RollingUpdate != nil:
		return "rollingUpdate"
	}
	return ""
}

// RollingUpdateStrategy replaces instances a few at a time behind the proxy.
type RollingUpdateStrategy struct {
	// MaxSurge is how many instances above replicas may run during the update: a count or a
	// percent of replicas (rounded up). Nil means 25%.
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`
	// MaxUnavailable is how many instances below replicas may be unavailable: a count or a
	// percent of replicas (rounded down). Nil means 25%. It cannot be 0 when maxSurge is 0.
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// Analysis runs in the background for the whole update; when it fails the update is
	// undone to the previous revision.
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`
	// Pause holds the update once some instances run the new revision, while its analysis
	// runs (and at least its duration). Nil means the update never holds by itself.
	Pause *RollingUpdatePause `json:"pause,omitempty"`
	// ScaleDownDelaySeconds is the watch window after promotion: the previous stable
	// revision's instances keep running (warm, with no traffic; in local mode the update takes old instances out of rotation instead of stopping them, while in Kubernetes mode the Deployment stops them, so a switch back there starts pods again) this long after the new
	// revision takes all traffic, and ramp keeps judging the new stable against the previous
	// revision's record (errors, latency, first token, exits, memory, business metrics). When
	// the new stable degrades, or on `ramp abort` or `ramp undo` inside the window, traffic
	// switches back to the warm instances at once and the rollout ends Degraded (Healthy for
	// an undo). 0 turns the window off. Nil means 300.
	// +kubebuilder:validation:Minimum=0
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`
}

// RollingUpdatePause is the point where a rolling update holds: once Updated instances of
// the new revision are available. The update goes on when the pause's analysis succeeds and
// its duration has passed, or on `ramp promote`; it is undone to the previous revision when
// the analysis fails. While the update has not passed this point, status.currentStepIndex is
// 0; after it, 1.
type RollingUpdatePause struct {
	// Updated is how many instances run the new revision when the update holds: a count or
	// a percent of replicas (rounded up), at least 1. Required. In Kubernetes mode the
	// Deployment controller creates the pods, and may have started a few more (up to its
	// maxSurge step) when ramp pauses the Deployment.
	Updated intstr.IntOrString `json:"updated"`
	// Duration is the least time the update holds: a number of seconds or a Go duration
	// ("30s", "2m"). Nil means no least time: it holds until the analysis succeeds or, with
	// no analysis, until `ramp promote`.
	Duration *intstr.IntOrString `json:"duration,omitempty"`
	// Analysis runs while the update holds; the update goes on when it succeeds and is
	// undone when it fails. Nil means no analysis.
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`
}

// CanaryStrategy runs the new revision beside stable and moves traffic to it step by step.
type CanaryStrategy struct {
	// Steps run in order. No steps means the canary is promoted as soon as it is ready.
	Steps []CanaryStep `json:"steps,omitempty"`
	// Analysis runs in the background from the first step until promotion.
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`
	// TrafficRouting says how traffic reaches the canary. Nil means ramp's own proxy in local
	// mode and replica-count weights in Kubernetes mode.
	TrafficRouting *TrafficRouting `json:"trafficRouting,omitempty"`
	// StableService is the Service that selects the stable pods (Kubernetes mode); ramp sets
	// its selector. Empty means none.
	StableService string `json:"stableService,omitempty"`
	// CanaryService is the Service that selects the canary pods (Kubernetes mode); ramp sets
	// its selector. Empty means none.
	CanaryService string `json:"canaryService,omitempty"`
	// Stickiness keeps each user on one revision for the whole canary (local mode). Nil
	// means every request is weighed on its own.
	Stickiness *Stickiness `json:"stickiness,omitempty"`
	// Mirror copies a share of the requests to the canary while there is one (local mode, and
	// Kubernetes mode with trafficRouting istio or gatewayAPI); the copies' answers are thrown
	// away (measured in local mode). Nil means no mirroring.
	Mirror *CanaryMirror `json:"mirror,omitempty"`
	// Judge compares the canary with stable continuously, on every request, from the first
	// step until promotion: it aborts as soon as the canary is shown worse and ends analysis
	// steps early once it is shown no worse. Nil means the judge with its defaults (on).
	Judge *CanaryJudge `json:"judge,omitempty"`
	// ScaleDownDelaySeconds is the watch window after promotion: the previous stable
	// revision's instances keep running (warm, with no traffic) this long after the new
	// revision takes all traffic, and ramp keeps judging the new stable against the previous
	// revision's record (errors, latency, first token, exits, memory, business metrics). When
	// the new stable degrades, or on `ramp abort` or `ramp undo` inside the window, traffic
	// switches back to the warm instances at once and the rollout ends Degraded (Healthy for
	// an undo). 0 turns the window off. Nil means 300.
	// +kubebuilder:validation:Minimum=0
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`
}

// Stickiness gives each user a bucket from 0 to 99: the hash of a header, or a cookie the
// proxy sets. Users in buckets below the canary weight go to the canary, so a user moved to
// the canary stays there as the weight grows. The header wins when both are given and the
// request has it.
type Stickiness struct {
	// Header hashes a request header such as x-user-id. Nil means none.
	Header *StickyHeader `json:"header,omitempty"`
	// Cookie keeps the bucket in a cookie the proxy sets. Nil means none.
	Cookie *StickyCookie `json:"cookie,omitempty"`
}

// StickyHeader names the header whose value identifies a user.
type StickyHeader struct {
	Name string `json:"name"`
}

// StickyCookie names the cookie that keeps a user's bucket.
type StickyCookie struct {
	Name string `json:"name"`
	// MaxAgeSeconds is the cookie's lifetime. Zero means a session cookie.
	MaxAgeSeconds int32 `json:"maxAgeSeconds,omitempty"`
}

// CanaryMirror copies a percentage of the requests to the canary.
type CanaryMirror struct {
	// Percentage of the requests copied, 1 to 100.
	Percentage int32 `json:"percentage"`
	// MaxConcurrent is the number of copies in flight (local mode); more are dropped and
	// counted. Zero means 16.
	MaxConcurrent int32 `json:"maxConcurrent,omitempty"`
	// MaxBodyBytes is the largest request body copied (local mode); larger ones are not
	// copied. Zero means 65536.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
}

// Judge metric names.
const (
	// JudgeErrorRate compares the shares of 5xx and failed requests.
	JudgeErrorRate = "error-rate"
	// JudgeLatency compares the shares of requests slower than stable's p95 in the minute
	// before the canary started, plus minLatencyIncrease.
	JudgeLatency = "latency"
	// JudgeFirstToken does the same for the time to the first byte of the response body:
	// for a streamed LLM answer, its first token.
	JudgeFirstToken = "first-token"
	// JudgeTTFB does the same for the time to the response headers.
	JudgeTTFB = "ttfb"
)

// CanaryJudge is the sequential canary-versus-stable judge (internal/analysis/judge): an
// anytime-valid test, looked at every second, whose chance of a wrong verdict is at most
// alpha.
type CanaryJudge struct {
	// Enabled turns the judge on or off. Nil means on. Local mode feeds it from ramp's proxy;
	// Kubernetes mode from Prometheus (the Istio or NGINX router's series, or the app's own
	// with spec.appMetrics), and there nil means off (and true is refused) when the rollout
	// has neither or no Prometheus.
	Enabled *bool `json:"enabled,omitempty"`
	// Alpha bounds the chance of a wrong verdict of each kind: aborting a canary that is no
	// worse than maxRatio, or ending a step early for one that is worse. A decimal between 0
	// and 0.5. Empty means 0.01.
	Alpha Decimal `json:"alpha,omitempty"`
	// MaxRatio is the tolerated ratio of the canary's error (or slow-request) rate to
	// stable's: the canary fails when shown above it and goes on early when shown below it.
	// A decimal of at least 1. Empty means 1.5.
	MaxRatio Decimal `json:"maxRatio,omitempty"`
	// MinErrors is how many canary errors (or slow requests) a metric needs before it can
	// fail the canary. Zero means 3.
	MinErrors int32 `json:"minErrors,omitempty"`
	// MinLatencyIncrease is the absolute floor of the latency, first-token and ttfb metrics:
	// a request counts as slow only when it took longer than stable's p95 plus this much
	// ("100ms", or seconds), so that a canary slower by microseconds is never judged worse,
	// however large the ratio. Nil means 100ms; 0 means no floor.
	MinLatencyIncrease *intstr.IntOrString `json:"minLatencyIncrease,omitempty"`
	// Metrics are what the judge compares: error-rate, latency, first-token, ttfb (local mode
	// only). Empty means error-rate, latency and first-token (in Kubernetes mode first-token
	// only with spec.appMetrics.firstToken).
	Metrics []string `json:"metrics,omitempty"`
	// EndAnalysisEarly ends a running analysis step with success once the judge has shown,
	// on the requests since that step began, that the canary is no worse. Nil means true.
	EndAnalysisEarly *bool `json:"endAnalysisEarly,omitempty"`
	// Business are metrics the judge reads from the instances' own /metrics (local mode) or
	// from the app's own series in Prometheus (Kubernetes mode, with spec.appMetrics), such
	// as failed triage answers, judged like error-rate: the canary's share of the bad answers
	// against its share of all answers. They are judged besides metrics. Empty means none.
	Business []JudgeBusinessMetric `json:"business,omitempty"`
}

// JudgeBusinessMetric is a counter the instances expose, some of whose series count bad
// answers: chat_triage_total{outcome="failed"} among all of chat_triage_total. Local mode
// scrapes every ready instance of the canary and of stable each second and judges the
// increases.
type JudgeBusinessMetric struct {
	// Name names the metric in the judge's verdicts and status, e.g. triage. Lower-case
	// letters, digits and dashes; not one of error-rate, latency, first-token, ttfb. Required.
	Name string `json:"name"`
	// Metric is the counter's name, e.g. chat_triage_total (or NAME_count of a histogram or
	// summary). Required.
	Metric string `json:"metric"`
	// Events are the label values of the series that count bad answers, e.g.
	// {outcome: failed} (exact match; a label a series lacks has the empty value). Required.
	Events map[string]string `json:"events"`
	// Total are the label values of the series that count all answers. Empty means every
	// series of the metric.
	Total map[string]string `json:"total,omitempty"`
	// Path is the metrics path on each instance (local mode). Empty means /metrics.
	Path string `json:"path,omitempty"`
}

// Decimal is a decimal number kept as text, such as "0.01". In YAML and JSON it may be
// written as a number (alpha: 0.01) or a string (alpha: "0.01").
type Decimal string

// UnmarshalJSON takes a JSON number or string.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = Decimal(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("decimal: want a number or a string, got %s", b)
	}
	*d = Decimal(n.String())
	return nil
}

// TrafficRouting names the traffic layer. Local mode uses ramp's proxy; the Kubernetes
// routers are filled in by Kubernetes mode.
type TrafficRouting struct {
	// ManagedRoutes are the header routes that setHeaderRoute steps may set, by name, in
	// order of precedence.
	ManagedRoutes []ManagedRoute `json:"managedRoutes,omitempty"`
	// TrustedSources are the client networks (CIDR, such as 10.0.0.0/8) whose requests may
	// follow header and cookie routes in local mode; other clients follow the weights. The
	// client is the connection's peer, never X-Forwarded-For. Empty means every client.
	TrustedSources []string `json:"trustedSources,omitempty"`

	// Kubernetes mode: at most one of the routers below. None means weights are approximated
	// by replica counts behind the stable Service.

	// GatewayAPI sets backend weights and header matches on an HTTPRoute.
	GatewayAPI *GatewayAPITrafficRouting `json:"gatewayAPI,omitempty"`
	// Istio sets weights and header matches on a VirtualService.
	Istio *IstioTrafficRouting `json:"istio,omitempty"`
	// SMI sets weights on a TrafficSplit.
	SMI *SMITrafficRouting `json:"smi,omitempty"`
	// Nginx sets canary annotations on a copy of an NGINX Ingress.
	Nginx *NginxTrafficRouting `json:"nginx,omitempty"`
	// ALB sets a weighted forward action and header conditions, as annotations of the AWS
	// Load Balancer Controller, on an Ingress the user owns.
	ALB *ALBTrafficRouting `json:"alb,omitempty"`
}

// GatewayAPITrafficRouting names the HTTPRoute whose backendRefs ramp weighs.
type GatewayAPITrafficRouting struct {
	HTTPRoute string `json:"httpRoute"`
}

// IstioTrafficRouting names the VirtualService, and the HTTP routes in it, that ramp weighs.
type IstioTrafficRouting struct {
	VirtualService IstioVirtualService `json:"virtualService"`
}

// IstioVirtualService names a VirtualService and its routes. No routes means the only one.
type IstioVirtualService struct {
	Name   string   `json:"name"`
	Routes []string `json:"routes,omitempty"`
}

// SMITrafficRouting names the TrafficSplit ramp owns. Empty TrafficSplitName means the
// rollout's name; empty RootService means stableService.
type SMITrafficRouting struct {
	RootService      string `json:"rootService,omitempty"`
	TrafficSplitName string `json:"trafficSplitName,omitempty"`
}

// NginxTrafficRouting names the stable Ingress; ramp makes a canary Ingress beside it.
type NginxTrafficRouting struct {
	StableIngress string `json:"stableIngress"`
}

// ALBTrafficRouting names the Ingress, served by the AWS Load Balancer Controller, whose paths
// to RootService ramp points at a forward action splitting traffic between the stable and
// canary Services. ramp writes the action annotation, the backend of those paths, and, for
// each header route, a path and its action and conditions annotations; nothing else.
type ALBTrafficRouting struct {
	// Ingress is the Ingress's name, in the rollout's namespace.
	Ingress string `json:"ingress"`
	// ServicePort is the port of the stable and canary Services that the target groups use.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	ServicePort int32 `json:"servicePort"`
	// RootService is the backend Service name of the Ingress paths ramp takes over, and the
	// name of their action. Empty means stableService.
	RootService string `json:"rootService,omitempty"`
	// AnnotationPrefix is the controller's annotation prefix (its --annotations-prefix).
	// Empty means alb.ingress.kubernetes.io.
	AnnotationPrefix string `json:"annotationPrefix,omitempty"`
}

// ManagedRoute names a header route that steps may set.
type ManagedRoute struct {
	Name string `json:"name"`
}

// CanaryStep is exactly one step.
type CanaryStep struct {
	// SetWeight sends this percent of traffic (0-100) to the canary.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SetWeight *int32 `json:"setWeight,omitempty"`
	// Pause waits for a duration, or until `ramp promote` when no duration is given.
	Pause *RolloutPause `json:"pause,omitempty"`
	// Analysis runs templates and waits for their result.
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`
	// SetHeaderRoute sends requests that match headers to the canary, ahead of weights.
	SetHeaderRoute *SetHeaderRoute `json:"setHeaderRoute,omitempty"`
	// SetCanaryScale sets the canary's instance count apart from its traffic weight.
	SetCanaryScale *SetCanaryScale `json:"setCanaryScale,omitempty"`
}

// RolloutPause is a pause step. A nil Duration waits for `ramp promote` or `ramp resume`.
type RolloutPause struct {
	Duration *intstr.IntOrString `json:"duration,omitempty"`
}

// SetHeaderRoute sets (or, with no match, removes) the named header route.
type SetHeaderRoute struct {
	// Name is the route's name; it must appear in trafficRouting.managedRoutes.
	Name string `json:"name"`
	// Match lists header conditions that must all hold. Empty, with CookieMatch empty,
	// removes the route.
	Match []HeaderMatch `json:"match,omitempty"`
	// CookieMatch lists cookie conditions that must all hold too (local mode).
	CookieMatch []CookieMatch `json:"cookieMatch,omitempty"`
}

// CookieMatch matches one request cookie by name (case-sensitive).
type CookieMatch struct {
	CookieName  string      `json:"cookieName"`
	CookieValue StringMatch `json:"cookieValue"`
}

// HeaderMatch matches one request header.
type HeaderMatch struct {
	HeaderName  string      `json:"headerName"`
	HeaderValue StringMatch `json:"headerValue"`
}

// StringMatch is exactly one of Exact, Prefix or Regex.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// SetCanaryScale sets the number of canary instances. Exactly one field is set.
type SetCanaryScale struct {
	// Replicas is a fixed instance count.
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`
	// Weight is a percent of spec.replicas (rounded up).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight *int32 `json:"weight,omitempty"`
	// MatchTrafficWeight goes back to scaling the canary with its traffic weight.
	MatchTrafficWeight bool `json:"matchTrafficWeight,omitempty"`
}

// BlueGreenStrategy runs the new revision as preview beside active and switches all traffic
// at once.
type BlueGreenStrategy struct {
	// ActiveService is the Service that takes production traffic (Kubernetes mode); ramp
	// points its selector at the active revision.
	ActiveService string `json:"activeService,omitempty"`
	// PreviewService reaches the preview revision before the switch (Kubernetes mode).
	// Empty means the preview gets no Service.
	PreviewService string `json:"previewService,omitempty"`
	// PreviewListen is the local-mode address (host:port) where the preview revision can be
	// reached before the switch. Empty means the preview gets no address of its own.
	PreviewListen string `json:"previewListen,omitempty"`
	// AutoPromotionEnabled switches traffic as soon as the preview is ready and
	// prePromotionAnalysis passed. Nil means true.
	AutoPromotionEnabled *bool `json:"autoPromotionEnabled,omitempty"`
	// AutoPromotionSeconds switches traffic this long after the preview is ready, even when
	// autoPromotionEnabled is false. Zero means not used.
	// +kubebuilder:validation:Minimum=0
	AutoPromotionSeconds int32 `json:"autoPromotionSeconds,omitempty"`
	// PreviewReplicaCount is the number of preview instances before the switch. Nil means
	// spec.replicas.
	// +kubebuilder:validation:Minimum=0
	PreviewReplicaCount *int32 `json:"previewReplicaCount,omitempty"`
	// PrePromotionAnalysis must pass before the switch.
	PrePromotionAnalysis *RolloutAnalysis `json:"prePromotionAnalysis,omitempty"`
	// PostPromotionAnalysis runs after the switch; when it fails, traffic switches back.
	PostPromotionAnalysis *RolloutAnalysis `json:"postPromotionAnalysis,omitempty"`
	// ScaleDownDelaySeconds is the watch window after promotion: the previous stable
	// revision's instances keep running (warm, with no traffic) this long after the new
	// revision takes all traffic, and ramp keeps judging the new stable against the previous
	// revision's record (errors, latency, first token, exits, memory, business metrics). When
	// the new stable degrades, or on `ramp abort` or `ramp undo` inside the window, traffic
	// switches back to the warm instances at once and the rollout ends Degraded (Healthy for
	// an undo). 0 turns the window off. Nil means 300.
	// +kubebuilder:validation:Minimum=0
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`
}

// RolloutAnalysis runs one or more analysis templates.
type RolloutAnalysis struct {
	// Templates are the analysis templates to run; at least one in a spec. Empty only in the
	// status of the judge's run, which has no templates.
	// +kubebuilder:validation:MinItems=1
	Templates []AnalysisTemplateRef `json:"templates,omitempty"`
	Args      []AnalysisRunArgument `json:"args,omitempty"`
}

// AnalysisTemplateRef names an AnalysisTemplate.
type AnalysisTemplateRef struct {
	TemplateName string `json:"templateName"`
}

// AnalysisRunArgument gives a value to a template argument.
type AnalysisRunArgument struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

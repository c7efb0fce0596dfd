package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Rollout ships new revisions of one service with one strategy.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStepIndex`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`
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

	// RevisionHistoryLimit is how many old revisions are kept for `ramp undo`. Nil means 10.
	// +kubebuilder:validation:Minimum=0
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`

	// ProgressDeadlineSeconds is how long a revision may go without progress (an instance
	// that does not become ready, a step that does not complete) before the rollout is
	// aborted. Nil means 600.
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// MinReadySeconds is how long a new instance must be ready before it counts as
	// available. Zero means available as soon as ready.
	// +kubebuilder:validation:Minimum=0
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`
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
}

// TrafficRouting names the traffic layer. Local mode uses ramp's proxy; the Kubernetes
// routers are filled in by Kubernetes mode.
type TrafficRouting struct {
	// ManagedRoutes are the header routes that setHeaderRoute steps may set, by name, in
	// order of precedence.
	ManagedRoutes []ManagedRoute `json:"managedRoutes,omitempty"`

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
	// Match lists header conditions that must all hold. Empty removes the route.
	Match []HeaderMatch `json:"match,omitempty"`
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
	// ScaleDownDelaySeconds keeps the old active revision running after the switch, so a
	// switch back needs no start-up. Nil means 30.
	// +kubebuilder:validation:Minimum=0
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`
}

// RolloutAnalysis runs one or more analysis templates.
type RolloutAnalysis struct {
	// +kubebuilder:validation:MinItems=1
	Templates []AnalysisTemplateRef `json:"templates"`
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

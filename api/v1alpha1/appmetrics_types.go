package v1alpha1

// AppMetrics says where Kubernetes mode reads a rollout's own Prometheus series: the app's
// request counter and duration histograms (scraped from its pods, each series labelled with
// the pod's pod-template-hash label, namespace and pod by the scrape's relabeling),
// kube-state-metrics' restarts and cAdvisor's CPU and memory. From them it answers the
// builtin metrics and feeds the canary judge per revision when the traffic router exports no
// request metrics of its own (the plain Service router, SMI, ALB, Gateway API), and reads
// the judge's business metrics. Every field has a default that fits the usual Prometheus
// client conventions; `appMetrics: {}` takes them all.
type AppMetrics struct {
	// Prefer says which series answer the request metrics (error-rate, request-*,
	// latency-*) and feed the judge when both exist: "router" (the traffic router's own,
	// Istio's or ingress-nginx's) or "app" (the app's own). Empty means router. Restarts,
	// CPU, memory, first-token and business metrics always come from the series below.
	// +kubebuilder:validation:Enum=router;app
	Prefer string `json:"prefer,omitempty"`
	// Requests is the app's request counter. Empty means http_requests_total.
	Requests string `json:"requests,omitempty"`
	// StatusLabel is the label of Requests that holds the HTTP status code; a 5xx code is
	// an error. Empty means status, or code on the series that have no status label.
	StatusLabel string `json:"statusLabel,omitempty"`
	// Duration is the app's request duration histogram in seconds, without _bucket. Empty
	// means http_request_duration_seconds.
	Duration string `json:"duration,omitempty"`
	// FirstToken is the app's histogram of the time to the first token (or first byte) of
	// a streamed answer in seconds, without _bucket, such as chat_first_token_seconds.
	// Empty means none: first-token metrics are then refused.
	FirstToken string `json:"firstToken,omitempty"`
	// Restarts is kube-state-metrics' container restart counter. Empty means
	// kube_pod_container_status_restarts_total.
	Restarts string `json:"restarts,omitempty"`
	// CPU is cAdvisor's container CPU counter in seconds. Empty means
	// container_cpu_usage_seconds_total.
	CPU string `json:"cpu,omitempty"`
	// Memory is cAdvisor's container memory gauge in bytes. Empty means
	// container_memory_working_set_bytes.
	Memory string `json:"memory,omitempty"`
	// RevisionLabel is the series label that holds the pod's pod-template-hash label, which
	// tells each revision's pods apart. Empty means pod_template_hash (what a labelmap of
	// __meta_kubernetes_pod_label_(.+) makes of it).
	RevisionLabel string `json:"revisionLabel,omitempty"`
	// NamespaceLabel and PodLabel are the series labels of the pod's namespace and name.
	// Empty means namespace and pod (kube-state-metrics' and cAdvisor's own names).
	NamespaceLabel string `json:"namespaceLabel,omitempty"`
	PodLabel       string `json:"podLabel,omitempty"`
	// MatchLabels are more label values the app's series must have (exact match), such as
	// {job: chat-api}. Empty means none.
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

package v1alpha1

// Notification sends what happens to a rollout (started, a step completed, paused, an
// analysis inconclusive, aborted, promoted, rolled back) to one destination: a webhook that
// takes ramp's JSON, a Slack incoming webhook or a Microsoft Teams incoming webhook. Each
// destination has its own queue: a slow or failing one holds neither the rollout nor the
// others.
type Notification struct {
	// Name names the destination in logs, events and errors (the URL never appears: a Slack
	// or Teams webhook URL is a secret). Required, unique within the rollout.
	Name string `json:"name"`
	// Type is the body's format: "webhook" (ramp's JSON), "slack" (a Slack incoming-webhook
	// message with Block Kit blocks) or "teams" (a Microsoft Teams message with an Adaptive
	// Card). Empty means webhook.
	// +kubebuilder:validation:Enum=webhook;slack;teams
	Type NotificationType `json:"type,omitempty"`
	// URL is where to POST, http or https. Prefer URLFile, URLEnv or URLSecretRef: this one
	// is stored with the rollout. Exactly one of the four is required.
	URL string `json:"url,omitempty"`
	// URLFile is a file holding the URL, read at every send.
	URLFile string `json:"urlFile,omitempty"`
	// URLEnv is the environment variable of ramp holding the URL.
	URLEnv string `json:"urlEnv,omitempty"`
	// URLSecretRef is a key of a Secret in the rollout's namespace holding the URL
	// (Kubernetes mode only), read at every send.
	URLSecretRef *SecretKeyRef `json:"urlSecretRef,omitempty"`
	// Headers are sent with every request, e.g. Authorization with a bearer token. Empty
	// means none.
	Headers []NotificationHeader `json:"headers,omitempty"`
	// Events are the events to send, by name: rollout-started, step-completed,
	// rollout-paused, analysis-inconclusive, rollout-aborted, rollout-promoted,
	// rollout-rolled-back. Empty means all.
	Events []string `json:"events,omitempty"`
}

// NotificationType is the format of a notification's body.
type NotificationType string

// Notification types.
const (
	NotificationWebhook NotificationType = "webhook"
	NotificationSlack   NotificationType = "slack"
	NotificationTeams   NotificationType = "teams"
)

// NotificationHeader is one HTTP header of a notification's requests. Its value comes from
// exactly one of Value, ValueFile, ValueEnv or ValueSecretRef.
type NotificationHeader struct {
	// Name is the header's name, e.g. Authorization. Required.
	Name string `json:"name"`
	// Value is the header's value, stored with the rollout.
	Value string `json:"value,omitempty"`
	// ValueFile is a file holding the value, read at every send.
	ValueFile string `json:"valueFile,omitempty"`
	// ValueEnv is the environment variable of ramp holding the value.
	ValueEnv string `json:"valueEnv,omitempty"`
	// ValueSecretRef is a key of a Secret in the rollout's namespace holding the value
	// (Kubernetes mode only).
	ValueSecretRef *SecretKeyRef `json:"valueSecretRef,omitempty"`
}

// The events a notification sends, by name (Notification.Events).
const (
	// NotifyRolloutStarted: a new revision starts rolling out.
	NotifyRolloutStarted = "rollout-started"
	// NotifyStepCompleted: a canary step completed (the weight changed), or a step was
	// skipped by promote.
	NotifyStepCompleted = "step-completed"
	// NotifyRolloutPaused: the rollout paused (a pause step, an inconclusive analysis,
	// `ramp pause`, a blue-green or rolling-update pause); the message says why.
	NotifyRolloutPaused = "rollout-paused"
	// NotifyAnalysisInconclusive: an analysis run ended inconclusive.
	NotifyAnalysisInconclusive = "analysis-inconclusive"
	// NotifyRolloutAborted: the revision under way was aborted; the message says why (the
	// failing analysis and the judge's explanation, a crash loop, `ramp abort`...).
	NotifyRolloutAborted = "rollout-aborted"
	// NotifyRolloutPromoted: a revision became stable (the rollout completed).
	NotifyRolloutPromoted = "rollout-promoted"
	// NotifyRolloutRolledBack: traffic went back to an older revision: a switch back in the
	// watch window after a promotion, or the template set back to the stable revision's
	// while another rolled out (`ramp undo`).
	NotifyRolloutRolledBack = "rollout-rolled-back"
)

// NotifyEvents lists every notification event name, in the order a rollout meets them.
var NotifyEvents = []string{NotifyRolloutStarted, NotifyStepCompleted, NotifyRolloutPaused,
	NotifyAnalysisInconclusive, NotifyRolloutAborted, NotifyRolloutPromoted, NotifyRolloutRolledBack}

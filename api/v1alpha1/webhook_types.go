package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// WebhookType says when ramp calls a gate webhook (spec.webhooks[].type). The names follow
// Flagger's webhooks.
type WebhookType string

const (
	// WebhookPreRollout is asked before the new revision takes any traffic: its instances
	// run (a smoke test can reach them on the canary or preview address), but no canary
	// step, pre-promotion analysis, switch or rolling-update instance goes ahead until the
	// gate lets it.
	WebhookPreRollout WebhookType = "pre-rollout"
	// WebhookConfirmTrafficIncrease is asked before each canary setWeight step that raises
	// the canary's weight, and before the blue-green switch (its one traffic increase).
	WebhookConfirmTrafficIncrease WebhookType = "confirm-traffic-increase"
	// WebhookConfirmPromotion is asked before the new revision is promoted: a canary's
	// promotion after its last step, the blue-green switch.
	WebhookConfirmPromotion WebhookType = "confirm-promotion"
	// WebhookPostRollout is called once after the new revision was promoted to stable. It
	// informs: its answer cannot hold anything.
	WebhookPostRollout WebhookType = "post-rollout"
	// WebhookRollback is called once when the rollout aborts and traffic goes back to
	// stable. It informs: its answer cannot hold anything.
	WebhookRollback WebhookType = "rollback"
)

// Blocking reports whether a webhook of type t gates the rollout (the others inform).
func (t WebhookType) Blocking() bool {
	switch t {
	case WebhookPreRollout, WebhookConfirmTrafficIncrease, WebhookConfirmPromotion:
		return true
	}
	return false
}

// WebhookFailurePolicy says what a gate that did not answer 2xx (an error status, a
// timeout, no connection) does to the rollout.
type WebhookFailurePolicy string

const (
	// WebhookHold keeps the rollout waiting at the gate (phase Paused, the message naming
	// the gate and its last answer) and asks again every interval until it answers 2xx.
	WebhookHold WebhookFailurePolicy = "Hold"
	// WebhookAbort aborts the rollout at the first answer that is not 2xx.
	WebhookAbort WebhookFailurePolicy = "Abort"
	// WebhookIgnore goes on as if the gate had answered 2xx; an event records the answer.
	WebhookIgnore WebhookFailurePolicy = "Ignore"
)

// Webhook is a gate webhook: ramp POSTs a JSON body (see README, "Gate webhooks") to its URL
// at one point of a rollout and, for the blocking types, waits for a 2xx answer.
type Webhook struct {
	// Name names the webhook in the status, messages and the body. Required; unique among
	// the rollout's webhooks.
	Name string `json:"name"`
	// Type is when it is called: pre-rollout, confirm-traffic-increase, confirm-promotion
	// (blocking gates), post-rollout or rollback (informative). Required.
	Type WebhookType `json:"type"`
	// URL is the http:// or https:// URL to POST to. Exactly one of url, urlFile, urlEnv
	// and urlSecretRef is required.
	URL string `json:"url,omitempty"`
	// URLFile is a file holding the URL, read at every call.
	URLFile string `json:"urlFile,omitempty"`
	// URLEnv is the environment variable of ramp holding the URL.
	URLEnv string `json:"urlEnv,omitempty"`
	// URLSecretRef is a key of a Secret in the rollout's namespace holding the URL
	// (Kubernetes mode only).
	URLSecretRef *SecretKeyRef `json:"urlSecretRef,omitempty"`
	// Timeout bounds one call ("10s" or seconds); a call that takes longer counts as a
	// failure. Nil means 10s.
	Timeout *intstr.IntOrString `json:"timeout,omitempty"`
	// Interval is how long a held gate waits before it is asked again ("10s" or seconds).
	// Nil means 10s.
	Interval *intstr.IntOrString `json:"interval,omitempty"`
	// FailurePolicy says what an answer other than 2xx does: Hold, Abort or Ignore. Only for
	// the blocking types. Empty means Hold.
	FailurePolicy WebhookFailurePolicy `json:"failurePolicy,omitempty"`
	// Metadata is sent as is in the body's metadata. Empty means none.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// GatePhase is what the last call of a gate webhook gave.
type GatePhase string

const (
	// GatePending: not answered yet (being asked, or about to be).
	GatePending GatePhase = "Pending"
	// GatePassed: it answered 2xx.
	GatePassed GatePhase = "Passed"
	// GateFailed: it answered something else, timed out or could not be reached.
	GateFailed GatePhase = "Failed"
)

// GateStatus is one call point of a webhook in a rollout: a webhook is asked once per
// revision (pre-rollout, confirm-promotion, post-rollout, rollback) or once per step
// (confirm-traffic-increase), and an answer for one never counts for another.
type GateStatus struct {
	// Name is the webhook's name.
	Name string      `json:"name"`
	Type WebhookType `json:"type"`
	// Revision is the revision the gate is about.
	Revision int64 `json:"revision"`
	// Step is the canary step index a confirm-traffic-increase gate comes before; nil for
	// the other types and for the blue-green switch.
	Step *int32 `json:"step,omitempty"`
	// Since is when the rollout came to the gate.
	Since metav1.Time `json:"since"`
	// Phase is the last answer's outcome.
	Phase GatePhase `json:"phase"`
	// Attempts counts the calls answered (or timed out) so far.
	Attempts int32 `json:"attempts,omitempty"`
	// Message is the last answer: the HTTP status and the start of the body, or why the
	// call failed.
	Message string `json:"message,omitempty"`
	// AnsweredAt is when the last call ended; nil before the first.
	AnsweredAt *metav1.Time `json:"answeredAt,omitempty"`
}

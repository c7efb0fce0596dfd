package control

import (
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// Revision is one version of a rollout's template: local mode stores it, Kubernetes mode
// reads it off a ControllerRevision (without Template), and the API sends it.
type Revision struct {
	Rollout  string            `json:"rollout"`
	Number   int64             `json:"number"`
	Template v1alpha1.Template `json:"template"`
	// Hash identifies the template's content; equal templates have equal hashes.
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"createdAt"`
	// Cause says how the revision came to be: "apply", "undo to revision 2".
	Cause string `json:"cause,omitempty"`
}

// UndoResult says what an undo did, in both modes.
type UndoResult struct {
	// Target is the revision whose template was written back.
	Target int64 `json:"target"`
	// Revision is the revision the rollout is at now: a new revision (New) that rolls out
	// with the rollout's strategy, or Target itself when Target is the stable revision, which
	// serves all traffic already: nothing rolls out then, and an aborted revision is dropped.
	Revision int64 `json:"revision"`
	New      bool  `json:"new"`
	// SwitchedBack says Target was the revision before the stable one, inside the watch
	// window after its promotion: its instances still ran and took all traffic at once.
	SwitchedBack bool `json:"switchedBack,omitempty"`
	// Note is what else the user should know (Kubernetes mode: the Deployment's revision
	// numbers, which `kubectl rollout history` shows). Empty means nothing.
	Note string `json:"note,omitempty"`
}

// Event is one entry of a rollout's history.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Rollout  string    `json:"rollout"`
	Type     string    `json:"type"` // Normal or Warning
	Reason   string    `json:"reason"`
	Message  string    `json:"message"`
	Revision int64     `json:"revision,omitempty"`
}

// Package store keeps local mode's state in an embedded database (bbolt) under the state
// directory: rollouts with their status, revisions with their templates, analysis templates
// and an append-only event history per rollout.
package store

import (
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// Revision is one version of a rollout's template.
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

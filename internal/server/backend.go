// Package server is local mode's control API: JSON over HTTP on loopback, with a bearer
// token required for every call, reads included, and the Host and Origin headers checked
// against the address it listens on (against DNS rebinding and cross-site requests).
package server

import (
	"context"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/store"
)

// Backend is what the API serves. Local mode's controller implements it.
type Backend interface {
	// Apply creates or updates rollouts and analysis templates; a changed template starts a
	// new revision. It returns one line per object ("rollout/chat-api configured").
	Apply(ctx context.Context, b *spec.Bundle) ([]string, error)
	List(ctx context.Context) ([]v1alpha1.Rollout, error)
	Get(ctx context.Context, name string) (*v1alpha1.Rollout, error)
	Promote(ctx context.Context, name string, full bool) error
	Pause(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	Abort(ctx context.Context, name string) error
	Retry(ctx context.Context, name string) error
	// Undo re-applies revision toRevision (0 means the one before the current): as a new
	// revision, or as the stable one when it is the stable revision's template.
	Undo(ctx context.Context, name string, toRevision int64) (store.UndoResult, error)
	// Restart replaces the stable revision's instances with new ones, a few at a time, and
	// returns what happens in words.
	Restart(ctx context.Context, name string) (string, error)
	History(ctx context.Context, name string) ([]store.Revision, error)
	Events(ctx context.Context, name string) ([]store.Event, error)
}

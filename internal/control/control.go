// Package control is the one control contract of ramp: the commands (apply, get, promote,
// abort...) that both modes implement, with their request and answer types. Local mode's
// controller and Kubernetes mode's commands implement Control; the HTTP API (internal/server)
// and the CLI are transports over it. It imports nothing that does I/O.
package control

import (
	"context"
	"errors"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
)

// Control is what a user can ask of a mode.
type Control interface {
	List(ctx context.Context) ([]v1alpha1.Rollout, error)
	// Get returns one rollout; a missing one is an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) (*v1alpha1.Rollout, error)
	// History lists the rollout's revisions, oldest first.
	History(ctx context.Context, name string) ([]Revision, error)
	// Events lists the rollout's events with Seq greater than afterSeq, oldest first.
	Events(ctx context.Context, name string, afterSeq uint64) ([]Event, error)
	// Apply creates or updates the rollouts and analysis templates of a YAML document and
	// returns one line per object ("rollout/chat-api configured"). An invalid document is an
	// error wrapping ErrInvalid whose problems Problems lists.
	Apply(ctx context.Context, yaml []byte) ([]string, error)
	// Promote ends the current pause or step; full skips every remaining step and analysis.
	// Promote, Pause, Resume, Abort, Retry and Restart return what happened in words.
	Promote(ctx context.Context, name string, full bool) (string, error)
	Pause(ctx context.Context, name string) (string, error)
	Resume(ctx context.Context, name string) (string, error)
	Abort(ctx context.Context, name string) (string, error)
	Retry(ctx context.Context, name string) (string, error)
	// Undo re-applies revision toRevision (0 means the one before the current): as a new
	// revision, or as the stable one when it is the stable revision's template.
	Undo(ctx context.Context, name string, toRevision int64) (UndoResult, error)
	// Restart replaces the stable revision's instances with new ones, a few at a time.
	Restart(ctx context.Context, name string) (string, error)
}

// ErrNotFound is wrapped by errors for a rollout, analysis template or revision that does
// not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped by errors for requests that do not fit the rollout's state
// ("promote: rollout chat-api is not paused").
var ErrConflict = errors.New("conflict")

// ErrInvalid is wrapped by errors for requests that are wrong in themselves (an applied
// rollout that names an unknown analysis template).
var ErrInvalid = errors.New("invalid")

// Invalid marks err, a list of problems with a request, as ErrInvalid, keeping err's text
// and problems as they are. Nil stays nil.
func Invalid(err error) error {
	if err == nil {
		return nil
	}
	return &invalidError{err: err}
}

type invalidError struct{ err error }

func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() []error      { return []error{e.err} }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// Problems splits an error into its problems, one line each: the errors it joins (as
// errors.Join does), else the lines of its text.
func Problems(err error) []string {
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

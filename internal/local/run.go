// Package local is local mode: it wires the engine to the process supervisor, ramp's proxy,
// the analysis runner and the store, and runs the control loop.
package local

import (
	"context"
	"log/slog"
)

// Options configure local mode.
type Options struct {
	// StateDir holds the database, the API token and the API address file.
	StateDir string
	// APIAddr is where the control API listens. Empty means 127.0.0.1:7070.
	APIAddr string
	Logger  *slog.Logger
}

// Run starts local mode and blocks until ctx ends. apply, when not empty, is YAML applied
// once everything is up (ramp up -f).
func Run(ctx context.Context, opts Options, apply []byte) error {
	panic("not implemented")
}

package local

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/supervisor"
)

// The builtin `restarts` metric counts an exit as soon as it happens, not once the restart's
// backoff has passed, so an analysis of `result < 1` sees a crash at once.
func TestBuiltinRestartsCountsAnExitAtOnce(t *testing.T) {
	sup, err := supervisor.New(supervisor.Options{
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		RestartBackoff: time.Minute, MaxRestartBackoff: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sup.Close(ctx)
	})
	sup.Scale("app", 1, v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{
		Command: "/bin/sh", Args: []string{"-c", "echo bye >&2; exit 3"},
	}}, 1)
	src := source{newController(deps{sup: sup})}
	deadline := time.Now().Add(10 * time.Second)
	for src.Instances("app", 1).Restarts < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("builtin restarts still %d 10s after an instance that exits at once started (restart backoff 1m): %+v",
				src.Instances("app", 1).Restarts, sup.Instances("app")[1])
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, bounded by the deadline
	}
}

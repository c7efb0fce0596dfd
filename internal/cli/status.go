package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) statusCmd() *cobra.Command {
	var watch bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Wait for a rollout to finish, printing its progress",
		Long: `Watch a rollout until it is done, printing a line each time its progress changes, as
kubectl rollout status does.

Exit codes:
  0  the rollout is Healthy
  1  the rollout is Degraded (aborted or failed; its message is printed), or an error
  2  --timeout passed before the rollout finished
  3  with --watch=false: the rollout is still progressing or paused`,
		Example: `  ramp apply -f chat-api.yaml && ramp status chat-api --timeout 15m
  ramp status chat-api --watch=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.status(cmd.Context(), args[0], watch, timeout)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", true, "wait until the rollout is done; false prints once")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait (0 waits forever)")
	return cmd
}

func (a *app) status(ctx context.Context, name string, watch bool, timeout time.Duration) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	timedOut := func() error {
		return &exitCodeError{code: exitTimeout, err: fmt.Errorf("timed out after %s waiting for rollout %s", timeout, name)}
	}
	ticker := time.NewTicker(a.pollInterval)
	defer ticker.Stop()
	last := ""
	for {
		r, err := c.Get(ctx, name)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return timedOut()
			}
			return err
		}
		line, p := describeProgress(r)
		line = a.hints(line)
		switch p {
		case progressDone:
			fmt.Fprintln(a.stdout, line)
			return nil
		case progressDegraded:
			return &exitCodeError{code: exitError, err: errors.New(line)}
		}
		if line != last {
			fmt.Fprintln(a.stdout, line)
			last = line
		}
		if !watch {
			return &exitCodeError{code: exitNotDone}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return timedOut()
			}
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/api/v1alpha1"
)

func (a *app) statusCmd() *cobra.Command {
	var watch bool
	var timeout time.Duration
	var output string
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Wait for a rollout to finish, printing its progress",
		Long: `Watch a rollout until it is done, printing a line each time its progress changes, as
kubectl rollout status does.

Exit codes:
  0  the rollout is Healthy
  1  the rollout is Degraded (aborted or failed; its message is printed), or an error
  2  --timeout passed before the rollout finished
  3  with --watch=false: the rollout is still progressing or paused

-o json prints, in place of each line, one JSON object a line (JSON Lines); -o yaml one YAML
document ("---") each: rollout, namespace, phase, state (progressing, paused, done or
degraded), message (the line), step, weight and the revisions. The exit codes stay the same.`,
		Example: `  ramp apply -f chat-api.yaml && ramp status chat-api --timeout 15m
  ramp status chat-api --watch=false
  ramp status chat-api -o json | jq -r .state`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput("status", output, "json", "yaml"); err != nil {
				return err
			}
			return a.status(cmd.Context(), args[0], watch, timeout, output)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", true, "wait until the rollout is done; false prints once")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait (0 waits forever)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (JSON Lines) or yaml (a document per change); default: lines of text")
	return cmd
}

// statusReport is one progress line of `status -o json|yaml`.
type statusReport struct {
	Rollout   string `json:"rollout"`
	Namespace string `json:"namespace,omitempty"`
	Phase     string `json:"phase"`
	// State is progressing, paused, done or degraded.
	State   string `json:"state"`
	Message string `json:"message"`
	// Step is "2/4" for a canary running its second step of four.
	Step string `json:"step,omitempty"`
	// Weight is the canary's share of traffic, in percent.
	Weight          int32 `json:"weight"`
	StableRevision  int64 `json:"stableRevision,omitempty"`
	CanaryRevision  int64 `json:"canaryRevision,omitempty"`
	ActiveRevision  int64 `json:"activeRevision,omitempty"`
	PreviewRevision int64 `json:"previewRevision,omitempty"`
	CurrentRevision int64 `json:"currentRevision,omitempty"`
}

func newStatusReport(r *v1alpha1.Rollout, line string, p progress) statusReport {
	state := "progressing"
	switch {
	case p == progressDone:
		state = "done"
	case p == progressDegraded:
		state = "degraded"
	case r.Status.Phase == v1alpha1.PhasePaused:
		state = "paused"
	}
	step := stepText(r)
	if step == "-" {
		step = ""
	}
	st := r.Status
	return statusReport{
		Rollout: r.Name, Namespace: r.Namespace, Phase: string(st.Phase), State: state, Message: line,
		Step: step, Weight: st.CanaryWeight,
		StableRevision: st.StableRevision, CanaryRevision: st.CanaryRevision, ActiveRevision: st.ActiveRevision,
		PreviewRevision: st.PreviewRevision, CurrentRevision: st.CurrentRevision,
	}
}

func (a *app) status(ctx context.Context, name string, watch bool, timeout time.Duration, output string) error {
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
		if structured(output) {
			// Every state is printed, the last one too: a script reads the outcome on stdout.
			if line != last || p != progressWaiting {
				if err := a.printStreamed(output, newStatusReport(r, line, p)); err != nil {
					return err
				}
				last = line
			}
		}
		switch p {
		case progressDone:
			if !structured(output) {
				fmt.Fprintln(a.stdout, line)
			}
			return nil
		case progressDegraded:
			return &exitCodeError{code: exitError, err: errors.New(line)}
		}
		if !structured(output) && line != last {
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

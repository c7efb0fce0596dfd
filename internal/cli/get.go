package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/engine"
)

func (a *app) getCmd() *cobra.Command {
	var output string
	var allNamespaces, watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "Show rollouts: one, or all of them",
		Long: `Show rollouts as a table, or the full objects as JSON or YAML.

Columns: STEP is the canary step being run; WEIGHT the canary's share of traffic (for blueGreen
the new revision's: 0% as preview, 100% once switched); STABLE the
revision serving production (the active one for blueGreen); CANARY the revision being rolled
out (the preview for blueGreen); READY the ready/desired instances over all revisions.
WEIGHT shows the real share when it differs from the step's, e.g. "25% (set 5%)": with plain
Services (no trafficRouting) the weight is carried by pod counts. -o wide adds the status
message. -A (Kubernetes mode) lists the rollouts of every namespace, with a NAMESPACE column.
For one rollout, an ANALYSIS section follows: each analysis run with each metric's phase, last
measured value and counts (measurements, successful, failed, inconclusive, errors); -o wide
shows values and messages in full.

--watch (-w) keeps showing them until Ctrl-C, asking every --interval (1s): for one rollout the
table, its revisions (role, weight, ready and available instances), the analysis runs (the
judge's among them) and the status message. On a terminal the view is redrawn in place; when
stdout is not a terminal (a pipe, a file) a block is written each time something other than an
age changes, headed by "--- " and the UTC time. --watch takes -o wide but not -o json|yaml:
` + "`ramp status NAME -o json`" + ` writes a document per change.`,
		Example: `  ramp get
  ramp get chat-api -o yaml
  kubectl ramp get -A
  ramp get chat-api --watch
  ramp get -w --interval 5s | tee rollouts.log`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput("get", output, "json", "yaml", "wide"); err != nil {
				return err
			}
			if watch && structured(output) {
				return fmt.Errorf("get: --watch draws tables; it does not take -o %s (use `ramp status NAME -o %s` for a document per change)", output, output)
			}
			if interval <= 0 {
				return fmt.Errorf("get: --interval must be positive, not %s", interval)
			}
			var c control.Control
			var err error
			switch {
			case allNamespaces && !a.kubernetesMode():
				return errors.New("get: -A/--all-namespaces lists the rollouts of a cluster's namespaces: it needs Kubernetes mode (--kubeconfig, --context, KUBECONFIG or kubectl ramp)")
			case allNamespaces && len(args) == 1:
				return fmt.Errorf("get: -A/--all-namespaces lists rollouts; a rollout is got by name in one namespace (-n), not %q across all", args[0])
			case allNamespaces:
				kc, kerr := a.kubeCommands()
				if kerr != nil {
					return kerr
				}
				kc.Namespace = "" // every namespace
				c = kc
			default:
				if c, err = a.client(); err != nil {
					return err
				}
			}
			fetch := func(ctx context.Context) ([]v1alpha1.Rollout, error) {
				if len(args) == 1 {
					r, err := c.Get(ctx, args[0])
					if err != nil {
						return nil, err
					}
					return []v1alpha1.Rollout{*r}, nil
				}
				return c.List(ctx)
			}
			if watch {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return a.watchGet(ctx, fetch, len(args) == 1, output == "wide", allNamespaces, interval)
			}
			rs, err := fetch(cmd.Context())
			if err != nil {
				return err
			}
			for i := range rs {
				if rs[i].Kind == "" {
					rs[i].APIVersion, rs[i].Kind = v1alpha1.APIVersion, v1alpha1.KindRollout
				}
			}
			if structured(output) {
				var obj any = &v1alpha1.RolloutList{Items: rs}
				if len(args) == 1 {
					obj = &rs[0]
				} else {
					l := obj.(*v1alpha1.RolloutList)
					l.APIVersion, l.Kind = v1alpha1.APIVersion, "RolloutList"
					if l.Items == nil {
						l.Items = []v1alpha1.Rollout{}
					}
				}
				return a.printObject(output, obj)
			}
			if len(rs) == 0 {
				fmt.Fprintln(a.stderr, "No rollouts.")
				return nil
			}
			a.printTable(a.stdout, rs, output == "wide", allNamespaces, a.now())
			if len(args) == 1 {
				a.printAnalysis(a.stdout, &rs[0], output == "wide")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json, yaml or wide")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "Kubernetes mode: list the rollouts of every namespace")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep showing the rollouts, redrawn every --interval, until Ctrl-C")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "with --watch: how often to ask for the rollouts")
	return cmd
}

// printTable writes rs as a table; a zero now shows no ages.
func (a *app) printTable(out io.Writer, rs []v1alpha1.Rollout, wide, namespaces bool, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	header := "NAME\tSTRATEGY\tPHASE\tSTEP\tWEIGHT\tSTABLE\tCANARY\tREADY\tAGE"
	if namespaces {
		header = "NAMESPACE\t" + header
	}
	if wide {
		header += "\tMESSAGE"
	}
	fmt.Fprintln(w, header)
	for i := range rs {
		r := &rs[i]
		var weight string
		if r.Spec.Strategy.BlueGreen != nil {
			// The new revision's real share: 0% as preview, 100% once traffic is switched.
			weight = "0%"
			if n := engine.InProgress(r); n != 0 {
				for _, rs := range r.Status.Revisions {
					if rs.Revision == n {
						weight = fmt.Sprintf("%d%%", rs.Weight)
					}
				}
			}
		} else {
			weight = fmt.Sprintf("%d%%", r.Status.CanaryWeight)
			if ow := r.Status.ObservedWeight; ow != nil && *ow != r.Status.CanaryWeight {
				weight = fmt.Sprintf("%d%% (set %d%%)", *ow, r.Status.CanaryWeight)
			}
		}
		canary := r.Status.CanaryRevision
		if r.Spec.Strategy.BlueGreen != nil {
			canary = r.Status.PreviewRevision
		}
		age := "-"
		if !r.CreationTimestamp.IsZero() && !now.IsZero() {
			age = duration.HumanDuration(now.Sub(r.CreationTimestamp.Time))
		}
		phase := string(r.Status.Phase)
		if phase == "" {
			phase = "-"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Name, strategyName(r), phase, stepText(r), weight,
			revText(baseRevision(r)), revText(canary), readyTotal(r), age)
		if namespaces {
			line = r.Namespace + "\t" + line
		}
		if wide {
			line += "\t" + a.hints(r.Status.Message)
		}
		fmt.Fprintln(w, line)
	}
	w.Flush()
}

// lastValueWidth is how much of a measured value the table shows without -o wide.
const lastValueWidth = 40

// printAnalysis lists r's analysis runs, one line per metric.
func (a *app) printAnalysis(out io.Writer, r *v1alpha1.Rollout, wide bool) {
	if len(r.Status.Analysis) == 0 {
		return
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	header := "ANALYSIS\tREVISION\tPHASE\tMETRIC\tMETRIC PHASE\tLAST\tCOUNT\tOK\tFAILED\tINCONCLUSIVE\tERROR"
	if wide {
		header += "\tMESSAGE"
	}
	fmt.Fprintln(w, header)
	for _, run := range r.Status.Analysis {
		phase := string(run.Phase)
		if phase == "" {
			phase = string(v1alpha1.AnalysisPending)
		}
		first := fmt.Sprintf("%s\t%d\t%s", run.Name, run.Revision, phase)
		if len(run.Metrics) == 0 {
			line := first + "\t-\t-\t-\t0\t0\t0\t0\t0"
			if wide {
				line += "\t" + run.Message
			}
			fmt.Fprintln(w, line)
			continue
		}
		for i, m := range run.Metrics {
			lead := first
			if i > 0 {
				lead = "\t\t"
			}
			last := "-"
			if n := len(m.Measurements); n > 0 {
				last = m.Measurements[n-1].Value
				if last == "" {
					last = "(" + string(m.Measurements[n-1].Phase) + ")"
				}
			}
			if !wide {
				last = shorten(last, lastValueWidth)
			}
			line := fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d", lead, m.Name, m.Phase, last,
				m.Count, m.Successful, m.Failed, m.Inconclusive, m.Error)
			if wide {
				line += "\t" + m.Message
			}
			fmt.Fprintln(w, line)
		}
	}
	w.Flush()
}

// shorten cuts s to n runes, marking the cut with an ellipsis, and keeps it on one line.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

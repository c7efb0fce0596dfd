// Package rampmetrics exports ramp's own metrics, the same in local and Kubernetes mode: each
// rollout's strategy, phase, step, real traffic weight and instances per revision, its analysis
// runs, the judge's verdicts and evidence, and how long decisions take. The gauges are read at
// scrape time from a snapshot of the Rollouts (their status is what ramp decided and observed),
// so they show the values of that moment and need no bookkeeping in the controllers.
//
// Each mode registers one Collector (NewCollector) with the registry behind its /metrics and
// calls ObserveReconcile after each decision.
package rampmetrics

import (
	"context"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ramp.dev/ramp/api/v1alpha1"
)

// Modes, the values of the mode label of ramp_reconcile_duration_seconds.
const (
	ModeLocal      = "local"
	ModeKubernetes = "kubernetes"
)

// Source lists the rollouts with their status. It is called at each scrape.
type Source func(ctx context.Context) ([]v1alpha1.Rollout, error)

// reconcileDuration is process-wide: one process runs one mode, and the controllers observe
// it without a reference to their registry's Collector.
var reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "ramp_reconcile_duration_seconds",
	Help:    "Time ramp took to decide and carry out one rollout's next step (one reconcile), by mode (local, kubernetes).",
	Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
}, []string{"mode"})

// ObserveReconcile records that one reconcile in mode took d.
func ObserveReconcile(mode string, d time.Duration) {
	reconcileDuration.WithLabelValues(mode).Observe(d.Seconds())
}

var (
	rolloutLabels = []string{"rollout", "namespace"}
	runLabels     = []string{"rollout", "namespace", "run"}
	judgeLabels   = []string{"rollout", "namespace", "run", "revision", "metric"}

	descInfo = prometheus.NewDesc("ramp_rollout_info",
		"Always 1: the rollout's strategy (rollingUpdate, canary, blueGreen) and its current revision (the one of the current template).",
		[]string{"rollout", "namespace", "strategy", "revision"}, nil)
	descPhase = prometheus.NewDesc("ramp_rollout_phase",
		"1 for the rollout's current phase (Progressing, Paused, Healthy, Degraded), 0 for the others.",
		[]string{"rollout", "namespace", "phase"}, nil)
	descStep = prometheus.NewDesc("ramp_rollout_step",
		"The step the rollout is at, as `ramp get` shows it (2 for \"2/5\"): the canary step being run, 1-based, or for blueGreen 1 before and 2 after the switch; equals ramp_rollout_steps when all are done. Absent for a rolling update or a canary without steps.",
		rolloutLabels, nil)
	descSteps = prometheus.NewDesc("ramp_rollout_steps",
		"The number of steps of the rollout's strategy (5 for \"2/5\"). Absent for a rolling update or a canary without steps.",
		rolloutLabels, nil)
	descSetWeight = prometheus.NewDesc("ramp_rollout_canary_weight",
		"The percent of traffic ramp sets for the canary (or the new revision of a rolling update) at the current step: the intent; ramp_rollout_weight is the real share.",
		rolloutLabels, nil)
	descAborted = prometheus.NewDesc("ramp_rollout_aborted",
		"1 while the rollout is aborted (until `ramp retry` or a new revision), else 0.",
		rolloutLabels, nil)
	descWeight = prometheus.NewDesc("ramp_rollout_weight",
		"The percent of traffic each revision receives: the real share where ramp observes it (the routing object, or ready instances behind a plain Service), else the share ramp set.",
		[]string{"rollout", "namespace", "revision", "role"}, nil)
	descReplicas = prometheus.NewDesc("ramp_rollout_replicas",
		"Instances (pods in Kubernetes mode) of each revision, by state: desired (what ramp wants), ready (passing readiness) and available (ready for minReadySeconds).",
		[]string{"rollout", "namespace", "revision", "role", "state"}, nil)

	descRunInfo = prometheus.NewDesc("ramp_analysis_run_info",
		"Always 1, for each analysis run in the rollout's status: its kind (step, background, prePromotion, postPromotion, pause, judge), the revision under analysis and the baseline it is compared with (empty when none).",
		[]string{"rollout", "namespace", "run", "kind", "revision", "baseline_revision"}, nil)
	descRunPhase = prometheus.NewDesc("ramp_analysis_run_phase",
		"1 for the analysis run's current phase (Pending, Running, Successful, Failed, Inconclusive, Error), 0 for the others.",
		[]string{"rollout", "namespace", "run", "kind", "phase"}, nil)
	descMetricMeasurements = prometheus.NewDesc("ramp_analysis_run_metric_measurements",
		"Measurements of one metric of an analysis run so far, by result (successful, failed, inconclusive, error).",
		append(append([]string{}, runLabels...), "metric", "result"), nil)
	descMetricValue = prometheus.NewDesc("ramp_analysis_run_metric_value",
		"The last measured value of one metric of an analysis run, when it is a number.",
		append(append([]string{}, runLabels...), "metric"), nil)

	descJudgeVerdict = prometheus.NewDesc("ramp_judge_verdict",
		"The canary judge's verdict on one metric, canary against stable: 1 for the current verdict (worse, no_worse, undecided), 0 for the others.",
		append(append([]string{}, judgeLabels...), "verdict"), nil)
	descJudgeRequests = prometheus.NewDesc("ramp_judge_requests",
		"Requests (or answers) the judge counted for one metric since the canary began, by side (canary, stable).",
		append(append([]string{}, judgeLabels...), "side"), nil)
	descJudgeEvents = prometheus.NewDesc("ramp_judge_events",
		"Bad events among them (errors, slow requests, failed answers), by side (canary, stable).",
		append(append([]string{}, judgeLabels...), "side"), nil)
	descJudgeRatio = prometheus.NewDesc("ramp_judge_ratio",
		"The canary's event rate over stable's for one metric (1 is equal; +Inf when stable had no events). Absent while either side has no requests or neither has events.",
		judgeLabels, nil)
	descJudgeLogBF = prometheus.NewDesc("ramp_judge_log_bayes_factor",
		"The judge's evidence for one metric: the log Bayes factor for the hypothesis (worse, no_worse); a verdict is reached when one reaches ramp_judge_threshold.",
		append(append([]string{}, judgeLabels...), "hypothesis"), nil)
	descJudgeThreshold = prometheus.NewDesc("ramp_judge_threshold",
		"The level, log(1/α), that a log Bayes factor must reach for a verdict.",
		judgeLabels, nil)
	descJudgeStepNoWorse = prometheus.NewDesc("ramp_judge_step_no_worse",
		"1 when the judge has shown the canary no worse than stable since the running step analysis run (step_run) began, which ends that run with success.",
		[]string{"rollout", "namespace", "run", "step_run"}, nil)

	rolloutPhases  = []v1alpha1.RolloutPhase{v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseHealthy, v1alpha1.PhaseDegraded}
	analysisPhases = []v1alpha1.AnalysisPhase{v1alpha1.AnalysisPending, v1alpha1.AnalysisRunning, v1alpha1.AnalysisSuccessful,
		v1alpha1.AnalysisFailed, v1alpha1.AnalysisInconclusive, v1alpha1.AnalysisError}
	verdicts = []string{"worse", "no_worse", "undecided"}
)

// Collector exports the rollouts that Source lists. Register one per registry.
type Collector struct {
	mu     sync.Mutex
	source Source
	// feeder is the Feeder whose source is read; nil when none.
	feeder *Feeder
	log    *slog.Logger
	// timeout bounds one Source call.
	timeout time.Duration
}

// NewCollector returns a Collector over source (nil: none until Feed sets one). log gets the
// errors of source (nil means slog.Default()).
func NewCollector(source Source, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{source: source, log: log, timeout: 10 * time.Second}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descPhase, descStep, descSteps, descSetWeight, descAborted, descWeight, descReplicas,
		descRunInfo, descRunPhase, descMetricMeasurements, descMetricValue,
		descJudgeVerdict, descJudgeRequests, descJudgeEvents, descJudgeRatio, descJudgeLogBF, descJudgeThreshold, descJudgeStepNoWorse} {
		ch <- d
	}
	reconcileDuration.Describe(ch)
}

// Collect lists the rollouts and sends their series, and the reconcile durations.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	reconcileDuration.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	c.mu.Lock()
	source := c.source
	c.mu.Unlock()
	if source == nil {
		return
	}
	rollouts, err := source(ctx)
	if err != nil {
		c.log.Error("list rollouts for /metrics", "err", err)
		return
	}
	for i := range rollouts {
		collectRollout(ch, &rollouts[i])
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func rev(r int64) string {
	if r == 0 {
		return ""
	}
	return strconv.FormatInt(r, 10)
}

func collectRollout(ch chan<- prometheus.Metric, r *v1alpha1.Rollout) {
	name, ns, st := r.Name, r.Namespace, &r.Status
	gauge(ch, descInfo, 1, name, ns, r.Spec.Strategy.Name(), rev(st.CurrentRevision))
	for _, p := range rolloutPhases {
		gauge(ch, descPhase, b2f(st.Phase == p), name, ns, string(p))
	}
	if at, of, ok := parseStep(st.Step); ok {
		gauge(ch, descStep, at, name, ns)
		gauge(ch, descSteps, of, name, ns)
	}
	gauge(ch, descSetWeight, float64(st.CanaryWeight), name, ns)
	gauge(ch, descAborted, b2f(st.Abort), name, ns)
	for _, rv := range st.Revisions {
		rs, role := strconv.FormatInt(rv.Revision, 10), string(rv.Role)
		gauge(ch, descWeight, float64(rv.Weight), name, ns, rs, role)
		gauge(ch, descReplicas, float64(rv.Desired), name, ns, rs, role, "desired")
		gauge(ch, descReplicas, float64(rv.Ready), name, ns, rs, role, "ready")
		gauge(ch, descReplicas, float64(rv.Available), name, ns, rs, role, "available")
	}
	for i := range st.Analysis {
		collectRun(ch, name, ns, &st.Analysis[i])
	}
}

// parseStep reads "2/5" into 2 and 5.
func parseStep(s string) (at, of float64, ok bool) {
	a, b, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.Atoi(a)
	y, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return float64(x), float64(y), true
}

func collectRun(ch chan<- prometheus.Metric, name, ns string, run *v1alpha1.AnalysisRunStatus) {
	kind := string(run.Kind)
	gauge(ch, descRunInfo, 1, name, ns, run.Name, kind, rev(run.Revision), rev(run.BaselineRevision))
	for _, p := range analysisPhases {
		gauge(ch, descRunPhase, b2f(run.Phase == p), name, ns, run.Name, kind, string(p))
	}
	if run.Kind == v1alpha1.AnalysisKindJudge {
		collectJudge(ch, name, ns, run)
		return
	}
	for _, m := range run.Metrics {
		for _, r := range []struct {
			result string
			n      int32
		}{{"successful", m.Successful}, {"failed", m.Failed}, {"inconclusive", m.Inconclusive}, {"error", m.Error}} {
			gauge(ch, descMetricMeasurements, float64(r.n), name, ns, run.Name, m.Name, r.result)
		}
		if n := len(m.Measurements); n > 0 {
			if v, err := strconv.ParseFloat(strings.TrimSpace(m.Measurements[n-1].Value), 64); err == nil {
				gauge(ch, descMetricValue, v, name, ns, run.Name, m.Name)
			}
		}
	}
}

// The judge writes its evidence into each metric's message (judge.Result.Explain): the counts
// on both sides, the verdict and the log Bayes factors. These read them back; the tests check
// them against Explain's own output.
var (
	reCounts    = regexp.MustCompile(`canary (\d+) .+? in (\d+) \([^)]*\), stable (\d+) .+? in (\d+) \(`)
	reDecided   = regexp.MustCompile(`log Bayes factor (\S+) ≥ (\S+) = log\(1/α\)`)
	reUndecided = regexp.MustCompile(`log Bayes factor worse (\S+), no worse (\S+), threshold (\S+) = log\(1/α\)`)
)

// judgeEvidence is what one judge metric's message says.
type judgeEvidence struct {
	verdict                             string
	canaryEvents, canaryTotal           float64
	stableEvents, stableTotal           float64
	hasCounts                           bool
	logBFWorse, logBFNoWorse, threshold float64
	hasWorse, hasNoWorse, hasThreshold  bool
}

func parseJudgeMessage(msg string, phase v1alpha1.AnalysisPhase) judgeEvidence {
	var e judgeEvidence
	num := func(s string) (float64, bool) {
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	switch {
	case phase == v1alpha1.AnalysisFailed || strings.Contains(msg, ": canary worse than stable: "):
		e.verdict = "worse"
	case strings.Contains(msg, ": canary no worse than stable: "):
		e.verdict = "no_worse"
	default:
		e.verdict = "undecided"
	}
	if m := reCounts.FindStringSubmatch(msg); m != nil {
		e.canaryEvents, _ = num(m[1])
		e.canaryTotal, _ = num(m[2])
		e.stableEvents, _ = num(m[3])
		e.stableTotal, _ = num(m[4])
		e.hasCounts = true
	}
	if m := reUndecided.FindStringSubmatch(msg); m != nil {
		e.logBFWorse, e.hasWorse = num(m[1])
		e.logBFNoWorse, e.hasNoWorse = num(m[2])
		e.threshold, e.hasThreshold = num(strings.TrimSuffix(m[3], ","))
	} else if m := reDecided.FindStringSubmatch(msg); m != nil {
		v, ok := num(m[1])
		if e.verdict == "worse" {
			e.logBFWorse, e.hasWorse = v, ok
		} else {
			e.logBFNoWorse, e.hasNoWorse = v, ok
		}
		e.threshold, e.hasThreshold = num(m[2])
	}
	return e
}

func collectJudge(ch chan<- prometheus.Metric, name, ns string, run *v1alpha1.AnalysisRunStatus) {
	rs := rev(run.Revision)
	for _, m := range run.Metrics {
		e := parseJudgeMessage(m.Message, m.Phase)
		lv := []string{name, ns, run.Name, rs, m.Name}
		for _, v := range verdicts {
			gauge(ch, descJudgeVerdict, b2f(e.verdict == v), append(lv, v)...)
		}
		if e.hasCounts {
			gauge(ch, descJudgeRequests, e.canaryTotal, append(lv, "canary")...)
			gauge(ch, descJudgeRequests, e.stableTotal, append(lv, "stable")...)
			gauge(ch, descJudgeEvents, e.canaryEvents, append(lv, "canary")...)
			gauge(ch, descJudgeEvents, e.stableEvents, append(lv, "stable")...)
			if r := ratio(e); !math.IsNaN(r) {
				gauge(ch, descJudgeRatio, r, lv...)
			}
		}
		if e.hasWorse {
			gauge(ch, descJudgeLogBF, e.logBFWorse, append(lv, "worse")...)
		}
		if e.hasNoWorse {
			gauge(ch, descJudgeLogBF, e.logBFNoWorse, append(lv, "no_worse")...)
		}
		if e.hasThreshold {
			gauge(ch, descJudgeThreshold, e.threshold, lv...)
		}
	}
	if run.NoWorseFor != "" {
		gauge(ch, descJudgeStepNoWorse, 1, name, ns, run.Name, run.NoWorseFor)
	}
}

// ratio is the canary's event rate over stable's, as judge.Result.Ratio computes it; +Inf when
// stable had no events and the canary some, NaN when it cannot be told.
func ratio(e judgeEvidence) float64 {
	if e.canaryTotal == 0 || e.stableTotal == 0 || (e.canaryEvents == 0 && e.stableEvents == 0) {
		return math.NaN()
	}
	return (e.canaryEvents / e.canaryTotal) / (e.stableEvents / e.stableTotal)
}

// shared is the Collector that Feed registers, once per process, with a process-wide registry.
var shared struct {
	once sync.Once
	c    *Collector
	err  error
}

// Feeder is a controller-runtime Runnable (manager.Add) that makes the shared Collector read
// its Source while the manager runs, on every replica (leader or not: they all see the same
// Rollouts).
type Feeder struct {
	source Source
}

// Feed registers, on its first call, the process's shared Collector with reg (for Kubernetes
// mode, controller-runtime's metrics.Registry, which every manager of the process serves) and
// returns the Runnable that sets source as its Source while it runs. Several managers in one
// process (tests) take turns: the one started last is read, until it stops.
func Feed(reg prometheus.Registerer, source Source, log *slog.Logger) (*Feeder, error) {
	shared.once.Do(func() {
		shared.c = NewCollector(nil, log)
		shared.err = reg.Register(shared.c)
	})
	return &Feeder{source: source}, shared.err
}

// Start reads f's source until ctx ends.
func (f *Feeder) Start(ctx context.Context) error {
	c := shared.c
	c.mu.Lock()
	c.source, c.feeder = f.source, f
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	if c.feeder == f {
		c.source, c.feeder = nil, nil
	}
	c.mu.Unlock()
	return nil
}

// NeedLeaderElection is false: every replica serves the metrics.
func (f *Feeder) NeedLeaderElection() bool { return false }

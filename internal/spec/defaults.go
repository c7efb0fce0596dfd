package spec

import (
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

// The defaults documented on the api/v1alpha1 fields. They are applied here and nowhere else.
const (
	DefaultReplicas                      int32 = 1
	DefaultRevisionHistoryLimit          int32 = 10
	DefaultProgressDeadlineSeconds       int32 = 600
	DefaultMaxSurge                            = "25%"
	DefaultMaxUnavailable                      = "25%"
	DefaultProbePeriodSeconds            int32 = 1
	DefaultProbeTimeoutSeconds           int32 = 1
	DefaultProbeSuccessThreshold         int32 = 1
	DefaultProbeFailureThreshold         int32 = 3
	DefaultProbePath                           = "/"
	DefaultStopSignal                          = "SIGTERM"
	DefaultTerminationGracePeriodSeconds int32 = 30
	DefaultAutoPromotionEnabled                = true
	// DefaultScaleDownDelaySeconds is the watch window after promotion, in every strategy:
	// long enough for a slow leak or a late crash to show at full traffic, short enough
	// that the previous revision's instances do not run beside the new ones for long.
	DefaultScaleDownDelaySeconds int32 = 300
	DefaultConsecutiveErrorLimit int32 = 4
	DefaultMinRequests           int32 = 1
	// DefaultCommandSuccessCondition judges a command metric: exit status 0 is the result 1.
	DefaultCommandSuccessCondition = "result == 1"
	// DefaultALBAnnotationPrefix is the AWS Load Balancer Controller's annotation prefix.
	DefaultALBAnnotationPrefix = "alb.ingress.kubernetes.io"
)

// SetDefaults fills every field of r whose zero value the API documents as meaning a default.
// It leaves alone what is derived at run time: blueGreen.previewReplicaCount (nil means
// spec.replicas, which may change) and a nil strategy (which validation rejects).
// Applying it twice changes nothing.
func SetDefaults(r *v1alpha1.Rollout) {
	s := &r.Spec
	if s.WorkloadRef == nil {
		// In Kubernetes mode the Deployment's replicas count: the reconciler sets them.
		setInt32(&s.Replicas, DefaultReplicas)
	}
	setInt32(&s.RevisionHistoryLimit, DefaultRevisionHistoryLimit)
	setInt32(&s.ProgressDeadlineSeconds, DefaultProgressDeadlineSeconds)

	if p := s.Template.Process; p != nil {
		if p.StopSignal == "" {
			p.StopSignal = DefaultStopSignal
		}
		setInt32(&p.TerminationGracePeriodSeconds, DefaultTerminationGracePeriodSeconds)
		if pr := p.ReadinessProbe; pr != nil {
			setZero(&pr.PeriodSeconds, DefaultProbePeriodSeconds)
			setZero(&pr.TimeoutSeconds, DefaultProbeTimeoutSeconds)
			setZero(&pr.SuccessThreshold, DefaultProbeSuccessThreshold)
			setZero(&pr.FailureThreshold, DefaultProbeFailureThreshold)
			if pr.HTTPGet.Path == "" {
				pr.HTTPGet.Path = DefaultProbePath
			}
		}
	}

	if ru := s.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge == nil {
			v := intstr.FromString(DefaultMaxSurge)
			ru.MaxSurge = &v
		}
		if ru.MaxUnavailable == nil {
			v := intstr.FromString(DefaultMaxUnavailable)
			ru.MaxUnavailable = &v
		}
	}
	if bg := s.Strategy.BlueGreen; bg != nil {
		if bg.AutoPromotionEnabled == nil {
			v := DefaultAutoPromotionEnabled
			bg.AutoPromotionEnabled = &v
		}
		setInt32(&bg.ScaleDownDelaySeconds, DefaultScaleDownDelaySeconds)
	}
}

// WatchWindow is the strategy's watch window after promotion (scaleDownDelaySeconds of the
// canary, blue-green or rolling-update strategy; rolling update when none is set): nil
// means DefaultScaleDownDelaySeconds, 0 no window.
func WatchWindow(s *v1alpha1.Strategy) time.Duration {
	var v *int32
	switch {
	case s.Canary != nil:
		v = s.Canary.ScaleDownDelaySeconds
	case s.BlueGreen != nil:
		v = s.BlueGreen.ScaleDownDelaySeconds
	case s.RollingUpdate != nil:
		v = s.RollingUpdate.ScaleDownDelaySeconds
	}
	n := DefaultScaleDownDelaySeconds
	if v != nil {
		n = *v
	}
	return time.Duration(n) * time.Second
}

// SetAnalysisTemplateDefaults fills the documented defaults of every metric: consecutiveErrorLimit
// 4, count 1 for a metric without an interval, builtin minRequests 1, and successCondition
// "result == 1" for a command or job metric with no condition. A metric with an
// interval and no count keeps a nil count (measure until the run is stopped).
// Applying it twice changes nothing.
func SetAnalysisTemplateDefaults(t *v1alpha1.AnalysisTemplate) {
	for i := range t.Spec.Metrics {
		m := &t.Spec.Metrics[i]
		setInt32(&m.ConsecutiveErrorLimit, DefaultConsecutiveErrorLimit)
		if m.Interval == nil {
			setInt32(&m.Count, 1)
		}
		if b := m.Provider.Builtin; b != nil {
			setZero(&b.MinRequests, DefaultMinRequests)
		}
		if (m.Provider.Command != nil || m.Provider.Job != nil) && m.SuccessCondition == "" && m.FailureCondition == "" {
			m.SuccessCondition = DefaultCommandSuccessCondition
		}
	}
}

func setInt32(p **int32, v int32) {
	if *p == nil {
		*p = &v
	}
}

func setZero(p *int32, v int32) {
	if *p == 0 {
		*p = v
	}
}

// The judge's defaults (spec.strategy.canary.judge), applied by JudgeSettings.
const (
	DefaultJudgeAlpha     = 0.01
	DefaultJudgeMaxRatio  = 1.5
	DefaultJudgeMinErrors = 3
	// DefaultJudgeMinLatencyIncrease is the absolute floor of the latency metrics: a request
	// is slow only above stable's p95 plus this much.
	DefaultJudgeMinLatencyIncrease = 100 * time.Millisecond
)

// JudgeMetricNames returns the metrics the judge can compare, in a fixed order.
func JudgeMetricNames() []string {
	return []string{v1alpha1.JudgeErrorRate, v1alpha1.JudgeLatency, v1alpha1.JudgeFirstToken, v1alpha1.JudgeTTFB}
}

// DefaultJudgeMetrics returns the metrics the judge compares when spec.strategy.canary.judge
// names none: errors, total time and the time to the first token (the time to the headers,
// ttfb, says little of a streamed answer, whose headers go out at once).
func DefaultJudgeMetrics() []string {
	return []string{v1alpha1.JudgeErrorRate, v1alpha1.JudgeLatency, v1alpha1.JudgeFirstToken}
}

// JudgeSettings is a canary judge with every default resolved.
type JudgeSettings struct {
	Enabled         bool
	Alpha, MaxRatio float64
	MinErrors       int32
	// MinLatencyIncrease is the absolute floor of the latency metrics (latency, first-token,
	// ttfb): a request is slow only above stable's p95 plus this much.
	MinLatencyIncrease time.Duration
	Metrics            []string
	EndAnalysisEarly   bool
	// Business are the business metrics judged besides Metrics (none by default).
	Business []v1alpha1.JudgeBusinessMetric
}

// Judge resolves c's judge settings: a nil judge, or a nil or empty field, takes its
// documented default. c must have passed validation (a bad number is taken as its default).
// SetDefaults leaves spec.strategy.canary.judge alone so that stored specs stay as written.
func Judge(c *v1alpha1.CanaryStrategy) JudgeSettings {
	s := JudgeSettings{Enabled: true, Alpha: DefaultJudgeAlpha, MaxRatio: DefaultJudgeMaxRatio,
		MinErrors: DefaultJudgeMinErrors, MinLatencyIncrease: DefaultJudgeMinLatencyIncrease,
		Metrics: DefaultJudgeMetrics(), EndAnalysisEarly: true}
	if c == nil {
		s.Enabled = false
		return s
	}
	j := c.Judge
	if j == nil {
		return s
	}
	if j.Enabled != nil {
		s.Enabled = *j.Enabled
	}
	if v, err := strconv.ParseFloat(string(j.Alpha), 64); err == nil {
		s.Alpha = v
	}
	if v, err := strconv.ParseFloat(string(j.MaxRatio), 64); err == nil {
		s.MaxRatio = v
	}
	if j.MinErrors > 0 {
		s.MinErrors = j.MinErrors
	}
	if d, err := ParseDuration(j.MinLatencyIncrease); err == nil && j.MinLatencyIncrease != nil && d >= 0 {
		s.MinLatencyIncrease = d
	}
	if len(j.Metrics) > 0 {
		s.Metrics = slices.Clone(j.Metrics)
	}
	if j.EndAnalysisEarly != nil {
		s.EndAnalysisEarly = *j.EndAnalysisEarly
	}
	for _, b := range j.Business {
		s.Business = append(s.Business, *b.DeepCopy())
	}
	return s
}

// WatchJudge is the judge of the watch window after a promotion: a canary's own judge
// settings; for blue-green and rolling update, which have no judge field, the defaults.
func WatchJudge(s *v1alpha1.Strategy) JudgeSettings {
	if s.Canary != nil {
		return Judge(s.Canary)
	}
	return Judge(&v1alpha1.CanaryStrategy{})
}

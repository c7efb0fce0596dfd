package spec

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"ramp.dev/ramp/api/v1alpha1"
)

// stopSignals are the signals a process may be stopped with.
var stopSignals = []string{"SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2"}

// builtinMetrics are the metrics the builtin provider measures.
var builtinMetrics = []string{
	"error-rate", "request-count", "request-rate",
	"latency-p50", "latency-p95", "latency-p99",
	"ttfb-p50", "ttfb-p95", "ttfb-p99",
	"first-token-p50", "first-token-p95", "first-token-p99",
	"restarts", "readiness-failures", "cpu", "memory",
}

// BuiltinMetricNames returns the metric names the builtin provider accepts, in a fixed order.
func BuiltinMetricNames() []string { return slices.Clone(builtinMetrics) }

// ValidateRollout reports every problem with r. It accepts r with or without defaults
// applied: a nil field is judged as its default. Template references are not checked here
// (see Bundle.CheckReferences).
func ValidateRollout(r *v1alpha1.Rollout) Errors {
	var l errList
	validateName(&l, r.Name)
	s := &r.Spec
	if s.Replicas != nil {
		nonNegative(&l, "spec.replicas", *s.Replicas)
	}
	if s.Listen != "" {
		validateHostPort(&l, "spec.listen", s.Listen, false)
	}
	if s.WorkloadRef != nil {
		validateKubernetes(&l, s)
	} else {
		validateTemplate(&l, &s.Template)
	}
	validateStrategy(&l, s)
	validateWebhooks(&l, s)
	if s.Proxy != nil {
		validateProxy(&l, "spec.proxy", s.Proxy)
	}
	if s.AppMetrics != nil {
		validateAppMetrics(&l, "spec.appMetrics", s.AppMetrics)
	}
	validateNotifications(&l, s.Notifications)
	if s.RevisionHistoryLimit != nil {
		nonNegative(&l, "spec.revisionHistoryLimit", *s.RevisionHistoryLimit)
	}
	deadline := DefaultProgressDeadlineSeconds
	if s.ProgressDeadlineSeconds != nil {
		deadline = *s.ProgressDeadlineSeconds
		if deadline <= 0 {
			l.add("spec.progressDeadlineSeconds", deadline, "must be > 0")
		}
	}
	switch {
	case s.MinReadySeconds < 0:
		l.add("spec.minReadySeconds", s.MinReadySeconds, "must be >= 0")
	case deadline > 0 && s.MinReadySeconds >= deadline:
		l.add("spec.minReadySeconds", s.MinReadySeconds, "must be less than progressDeadlineSeconds (%d)", deadline)
	}
	return l.errs
}

func validateName(l *errList, name string) {
	if name == "" {
		l.add("metadata.name", nil, "is required")
		return
	}
	for _, msg := range validation.IsDNS1123Label(name) {
		l.add("metadata.name", name, "is not a DNS-1123 label: %s", msg)
	}
}

func nonNegative(l *errList, path string, v int32) {
	if v < 0 {
		l.add(path, v, "must be >= 0")
	}
}

func between(l *errList, path string, v, lo, hi int32) {
	if v < lo || v > hi {
		l.add(path, v, "is not between %d and %d", lo, hi)
	}
}

// validateHostPort checks host:port with a numeric port 1-65535; needHost also requires a host.
func validateHostPort(l *errList, path, addr string, needHost bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		l.add(path, addr, "is not host:port")
		return
	}
	if needHost && host == "" {
		l.add(path, addr, "has no host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		l.add(path, addr, "has no port between 1 and 65535")
	}
}

func validateTemplate(l *errList, t *v1alpha1.Template) {
	const path = "spec.template"
	switch {
	case t.Process == nil && len(t.Upstreams) == 0:
		l.add(path, nil, "needs one of process or upstreams")
	case t.Process != nil && len(t.Upstreams) > 0:
		l.add(path, nil, "has both process and upstreams; give one")
	}
	seen := map[string]int{}
	for i, u := range t.Upstreams {
		p := fmt.Sprintf("%s.upstreams[%d]", path, i)
		validateHostPort(l, p, u, true)
		if j, ok := seen[u]; ok {
			l.add(p, u, "repeats upstreams[%d]", j)
		} else {
			seen[u] = i
		}
	}
	if t.Process != nil {
		validateProcess(l, path+".process", t.Process)
	}
}

// validateKubernetes checks a Kubernetes-mode spec: the pod template comes from the Deployment
// that workloadRef names, so the local-mode fields (template, replicas, listen addresses) must
// be empty; blue-green needs the Service it switches.
func validateKubernetes(l *errList, s *v1alpha1.RolloutSpec) {
	ref := s.WorkloadRef
	if t := s.Template; t.Process != nil || len(t.Upstreams) > 0 {
		l.add("spec.template", nil, "is set together with spec.workloadRef; give one: template in local mode, workloadRef in Kubernetes mode")
	}
	if ref.Name == "" {
		l.add("spec.workloadRef.name", nil, "is required")
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(ref.Name) {
			l.add("spec.workloadRef.name", ref.Name, "is not a Deployment name: %s", msg)
		}
	}
	if ref.APIVersion != "" && ref.APIVersion != "apps/v1" {
		l.add("spec.workloadRef.apiVersion", ref.APIVersion, "is not apps/v1")
	}
	if ref.Kind != "" && ref.Kind != "Deployment" {
		l.add("spec.workloadRef.kind", ref.Kind, "is not Deployment")
	}
	if s.Replicas != nil {
		l.add("spec.replicas", *s.Replicas, "is set together with spec.workloadRef; the Deployment's replicas count, leave it out")
	}
	if s.Listen != "" {
		l.add("spec.listen", s.Listen, "is a local-mode address; with spec.workloadRef traffic arrives through Services")
	}
	service := func(path, name string) {
		for _, msg := range validation.IsDNS1035Label(name) {
			l.add(path, name, "is not a Service name: %s", msg)
		}
	}
	if c := s.Strategy.Canary; c != nil {
		if c.StableService != "" {
			service("spec.strategy.canary.stableService", c.StableService)
		}
		if c.CanaryService != "" {
			service("spec.strategy.canary.canaryService", c.CanaryService)
			// With a traffic router, validateTrafficRouters says it.
			if c.CanaryService == c.StableService && NamedRouter(c) == "" {
				l.add("spec.strategy.canary.canaryService", c.CanaryService, "is the same as stableService")
			}
		}
	}
	if bg := s.Strategy.BlueGreen; bg != nil {
		if bg.ActiveService == "" {
			l.add("spec.strategy.blueGreen.activeService", nil, "is required with spec.workloadRef: it is the Service that blue-green switches")
		} else {
			service("spec.strategy.blueGreen.activeService", bg.ActiveService)
		}
		if bg.PreviewService != "" {
			service("spec.strategy.blueGreen.previewService", bg.PreviewService)
			if bg.PreviewService == bg.ActiveService {
				l.add("spec.strategy.blueGreen.previewService", bg.PreviewService, "is the same as activeService")
			}
		}
		if bg.PreviewListen != "" {
			l.add("spec.strategy.blueGreen.previewListen", bg.PreviewListen, "is a local-mode address; with spec.workloadRef use previewService")
		}
	}
}

func validateProcess(l *errList, path string, p *v1alpha1.ProcessTemplate) {
	if strings.TrimSpace(p.Command) == "" {
		l.add(path+".command", nil, "is required")
	}
	seen := map[string]int{}
	for i, e := range p.Env {
		ep := fmt.Sprintf("%s.env[%d].name", path, i)
		switch {
		case e.Name == "":
			l.add(ep, nil, "is required")
		case e.Name == "PORT":
			l.add(ep, e.Name, "is set by ramp to the instance's port and cannot be given")
		case strings.ContainsAny(e.Name, "=\x00"):
			l.add(ep, e.Name, "must not contain '=' or NUL")
		}
		if e.Name == "" {
			continue
		}
		if j, ok := seen[e.Name]; ok {
			l.add(ep, e.Name, "repeats env[%d]", j)
		} else {
			seen[e.Name] = i
		}
	}
	if p.StopSignal != "" && !slices.Contains(stopSignals, p.StopSignal) {
		l.add(path+".stopSignal", p.StopSignal, "is not one of %s", strings.Join(stopSignals, ", "))
	}
	if p.TerminationGracePeriodSeconds != nil {
		nonNegative(l, path+".terminationGracePeriodSeconds", *p.TerminationGracePeriodSeconds)
	}
	if pr := p.ReadinessProbe; pr != nil {
		pp := path + ".readinessProbe"
		nonNegative(l, pp+".initialDelaySeconds", pr.InitialDelaySeconds)
		nonNegative(l, pp+".periodSeconds", pr.PeriodSeconds)
		nonNegative(l, pp+".timeoutSeconds", pr.TimeoutSeconds)
		nonNegative(l, pp+".successThreshold", pr.SuccessThreshold)
		nonNegative(l, pp+".failureThreshold", pr.FailureThreshold)
		if pr.HTTPGet.Path != "" && !strings.HasPrefix(pr.HTTPGet.Path, "/") {
			l.add(pp+".httpGet.path", pr.HTTPGet.Path, "must start with \"/\"")
		}
		between(l, pp+".httpGet.port", pr.HTTPGet.Port, 0, 65535)
	}
}

func validateStrategy(l *errList, s *v1alpha1.RolloutSpec) {
	const path = "spec.strategy"
	st := &s.Strategy
	var set []string
	if st.RollingUpdate != nil {
		set = append(set, "rollingUpdate")
	}
	if st.Canary != nil {
		set = append(set, "canary")
	}
	if st.BlueGreen != nil {
		set = append(set, "blueGreen")
	}
	switch len(set) {
	case 0:
		l.add(path, nil, "needs one of rollingUpdate, canary or blueGreen")
	case 1:
	default:
		l.add(path, nil, "has %s; give only one", strings.Join(set, " and "))
	}
	if ru := st.RollingUpdate; ru != nil {
		validateRollingUpdate(l, path+".rollingUpdate", ru)
	}
	if st.Canary != nil {
		validateCanary(l, path+".canary", s)
	}
	if bg := st.BlueGreen; bg != nil {
		validateBlueGreen(l, path+".blueGreen", bg, s.Listen)
	}
}

func validateRollingUpdate(l *errList, path string, ru *v1alpha1.RollingUpdateStrategy) {
	if ru.ScaleDownDelaySeconds != nil {
		nonNegative(l, path+".scaleDownDelaySeconds", *ru.ScaleDownDelaySeconds)
	}
	surgeZero := validateCountOrPercent(l, path+".maxSurge", ru.MaxSurge)
	unavailZero := validateCountOrPercent(l, path+".maxUnavailable", ru.MaxUnavailable)
	if surgeZero && unavailZero {
		l.add(path, nil, "maxSurge and maxUnavailable cannot both be 0")
	}
	if ru.Analysis != nil {
		validateAnalysis(l, path+".analysis", ru.Analysis)
	}
	if p := ru.Pause; p != nil {
		pp := path + ".pause"
		switch zero := validateCountOrPercent(l, pp+".updated", &p.Updated); {
		case zero && p.Updated.Type == intstr.Int && p.Updated.IntVal == 0:
			l.add(pp+".updated", nil, "is required: how many instances run the new revision when the update holds (a count or a percent like \"25%%\"), at least 1")
		case zero:
			l.add(pp+".updated", &p.Updated, "must be more than 0%%")
		}
		if p.Duration != nil {
			validateDuration(l, pp+".duration", p.Duration, false)
		}
		if p.Analysis != nil {
			validateAnalysis(l, pp+".analysis", p.Analysis)
		}
	}
}

// validateCountOrPercent checks a count >= 0 or "N%" with 0 <= N <= 100 and reports whether
// the value is a literal zero. Nil (the 25% default) is fine.
func validateCountOrPercent(l *errList, path string, v *intstr.IntOrString) (zero bool) {
	if v == nil {
		return false
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			l.add(path, v, "must be >= 0")
		}
		return v.IntVal == 0
	}
	p, err := parsePercent(v.StrVal)
	switch {
	case err != nil:
		l.add(path, v, "is not a count or a percent like \"25%%\"")
		return false
	case p < 0 || p > 100:
		l.add(path, v, "is not a percent between 0%% and 100%%")
		return false
	}
	return p == 0
}

func validateCanary(l *errList, path string, s *v1alpha1.RolloutSpec) {
	c := s.Strategy.Canary
	if c.ScaleDownDelaySeconds != nil {
		nonNegative(l, path+".scaleDownDelaySeconds", *c.ScaleDownDelaySeconds)
	}
	routes := map[string]bool{}
	if tr := c.TrafficRouting; tr != nil {
		for i, r := range tr.ManagedRoutes {
			rp := fmt.Sprintf("%s.trafficRouting.managedRoutes[%d].name", path, i)
			switch {
			case r.Name == "":
				l.add(rp, nil, "is required")
			case routes[r.Name]:
				l.add(rp, r.Name, "is given twice")
			}
			routes[r.Name] = true
		}
		validateTrustedSources(l, path+".trafficRouting.trustedSources", tr.TrustedSources)
	}
	if c.Stickiness != nil {
		validateStickiness(l, path+".stickiness", c.Stickiness)
	}
	if c.Mirror != nil {
		validateMirror(l, path+".mirror", c.Mirror)
	}
	validateTrafficRouters(l, path, s)
	if c.Analysis != nil {
		validateAnalysis(l, path+".analysis", c.Analysis)
	}
	if c.Judge != nil {
		validateJudge(l, path+".judge", c.Judge)
	}
	for i := range c.Steps {
		validateStep(l, fmt.Sprintf("%s.steps[%d]", path, i), &c.Steps[i], routes)
	}
}

func validateJudge(l *errList, path string, j *v1alpha1.CanaryJudge) {
	decimal := func(field string, d v1alpha1.Decimal, ok func(float64) bool, want string) {
		if d == "" {
			return
		}
		v, err := strconv.ParseFloat(string(d), 64)
		if err != nil || !ok(v) {
			l.add(path+"."+field, string(d), "is not %s", want)
		}
	}
	decimal("alpha", j.Alpha, func(v float64) bool { return v > 0 && v <= 0.5 }, "a number above 0 and at most 0.5")
	decimal("maxRatio", j.MaxRatio, func(v float64) bool { return v >= 1 && v <= 100 }, "a number between 1 and 100")
	nonNegative(l, path+".minErrors", j.MinErrors)
	validateDuration(l, path+".minLatencyIncrease", j.MinLatencyIncrease, false)
	known := JudgeMetricNames()
	seen := map[string]bool{}
	for i, m := range j.Metrics {
		mp := fmt.Sprintf("%s.metrics[%d]", path, i)
		switch {
		case !slices.Contains(known, m):
			l.add(mp, m, "is not one of %s", strings.Join(known, ", "))
		case seen[m]:
			l.add(mp, m, "is given twice")
		}
		seen[m] = true
	}
	names := map[string]bool{}
	for i := range j.Business {
		validateJudgeBusiness(l, fmt.Sprintf("%s.business[%d]", path, i), &j.Business[i], names)
	}
}

func validateJudgeBusiness(l *errList, path string, b *v1alpha1.JudgeBusinessMetric, names map[string]bool) {
	switch {
	case b.Name == "":
		l.add(path+".name", nil, "is required")
	case len(validation.IsDNS1123Label(b.Name)) > 0:
		l.add(path+".name", b.Name, "is not lower-case letters, digits and dashes (at most 63)")
	case slices.Contains(JudgeMetricNames(), b.Name):
		l.add(path+".name", b.Name, "is the name of a built-in judge metric")
	case names[b.Name]:
		l.add(path+".name", b.Name, "is given twice")
	}
	names[b.Name] = true
	validateSeries(l, path, b.Metric, nil, true)
	if len(b.Events) == 0 {
		l.add(path+".events", nil, "is required: the label values of the series that count bad answers")
	}
	validateLabelNames(l, path+".events", b.Events)
	validateLabelNames(l, path+".total", b.Total)
	if b.Path != "" && !strings.HasPrefix(b.Path, "/") {
		l.add(path+".path", b.Path, "must start with /")
	}
}

func validateStep(l *errList, path string, st *v1alpha1.CanaryStep, routes map[string]bool) {
	var set []string
	if st.SetWeight != nil {
		set = append(set, "setWeight")
		between(l, path+".setWeight", *st.SetWeight, 0, 100)
	}
	if st.Pause != nil {
		set = append(set, "pause")
		if st.Pause.Duration != nil {
			validateDuration(l, path+".pause.duration", st.Pause.Duration, false)
		}
	}
	if st.Analysis != nil {
		set = append(set, "analysis")
		validateAnalysis(l, path+".analysis", st.Analysis)
	}
	if hr := st.SetHeaderRoute; hr != nil {
		set = append(set, "setHeaderRoute")
		validateHeaderRoute(l, path+".setHeaderRoute", hr, routes)
	}
	if cs := st.SetCanaryScale; cs != nil {
		set = append(set, "setCanaryScale")
		validateCanaryScale(l, path+".setCanaryScale", cs)
	}
	switch len(set) {
	case 0:
		l.add(path, nil, "is empty; give one of setWeight, pause, analysis, setHeaderRoute or setCanaryScale")
	case 1:
	default:
		l.add(path, nil, "has %s; a step does one thing", strings.Join(set, " and "))
	}
}

func validateHeaderRoute(l *errList, path string, hr *v1alpha1.SetHeaderRoute, routes map[string]bool) {
	switch {
	case hr.Name == "":
		l.add(path+".name", nil, "is required")
	case !routes[hr.Name]:
		l.add(path+".name", hr.Name, "is not in trafficRouting.managedRoutes")
	}
	for i, m := range hr.Match {
		mp := fmt.Sprintf("%s.match[%d]", path, i)
		if m.HeaderName == "" {
			l.add(mp+".headerName", nil, "is required")
		} else if hopByHop(m.HeaderName) {
			l.add(mp+".headerName", m.HeaderName, hopByHopMsg)
		}
		validateStringMatch(l, mp+".headerValue", m.HeaderValue)
	}
	validateCookieMatch(l, path+".cookieMatch", hr.CookieMatch)
}

func validateCanaryScale(l *errList, path string, cs *v1alpha1.SetCanaryScale) {
	n := 0
	if cs.Replicas != nil {
		n++
		nonNegative(l, path+".replicas", *cs.Replicas)
	}
	if cs.Weight != nil {
		n++
		between(l, path+".weight", *cs.Weight, 0, 100)
	}
	if cs.MatchTrafficWeight {
		n++
	}
	if n != 1 {
		l.add(path, nil, "needs exactly one of replicas, weight or matchTrafficWeight")
	}
}

func validateBlueGreen(l *errList, path string, bg *v1alpha1.BlueGreenStrategy, listen string) {
	if bg.PreviewListen != "" {
		validateHostPort(l, path+".previewListen", bg.PreviewListen, false)
		if bg.PreviewListen == listen {
			l.add(path+".previewListen", bg.PreviewListen, "is the same as spec.listen")
		}
	}
	nonNegative(l, path+".autoPromotionSeconds", bg.AutoPromotionSeconds)
	if bg.PreviewReplicaCount != nil {
		nonNegative(l, path+".previewReplicaCount", *bg.PreviewReplicaCount)
	}
	if bg.ScaleDownDelaySeconds != nil {
		nonNegative(l, path+".scaleDownDelaySeconds", *bg.ScaleDownDelaySeconds)
	}
	if bg.PrePromotionAnalysis != nil {
		validateAnalysis(l, path+".prePromotionAnalysis", bg.PrePromotionAnalysis)
	}
	if bg.PostPromotionAnalysis != nil {
		validateAnalysis(l, path+".postPromotionAnalysis", bg.PostPromotionAnalysis)
	}
}

func validateAnalysis(l *errList, path string, a *v1alpha1.RolloutAnalysis) {
	if len(a.Templates) == 0 {
		l.add(path+".templates", nil, "needs at least one template")
	}
	for i, t := range a.Templates {
		if t.TemplateName == "" {
			l.add(fmt.Sprintf("%s.templates[%d].templateName", path, i), nil, "is required")
		}
	}
	seen := map[string]int{}
	for i, arg := range a.Args {
		ap := fmt.Sprintf("%s.args[%d].name", path, i)
		if arg.Name == "" {
			l.add(ap, nil, "is required")
			continue
		}
		if j, ok := seen[arg.Name]; ok {
			l.add(ap, arg.Name, "repeats args[%d]", j)
		} else {
			seen[arg.Name] = i
		}
	}
}

// validateDuration checks that v parses and is >= 0, or > 0 when positive is set.
func validateDuration(l *errList, path string, v *intstr.IntOrString, positive bool) {
	d, err := ParseDuration(v)
	switch {
	case err != nil:
		l.add(path, v, "is not a duration like \"30s\", \"1m\" or a number of seconds")
	case positive && d <= 0:
		l.add(path, v, "must be > 0")
	case d < 0:
		l.add(path, v, "must be >= 0")
	}
}

// ValidateAnalysisTemplate reports every problem with t. It accepts t with or without
// defaults applied.
func ValidateAnalysisTemplate(t *v1alpha1.AnalysisTemplate) Errors {
	var l errList
	validateName(&l, t.Name)
	if len(t.Spec.Metrics) == 0 {
		l.add("spec.metrics", nil, "needs at least one metric")
	}
	names := map[string]int{}
	for i := range t.Spec.Metrics {
		m := &t.Spec.Metrics[i]
		path := fmt.Sprintf("spec.metrics[%d]", i)
		switch j, dup := names[m.Name]; {
		case m.Name == "":
			l.add(path+".name", nil, "is required")
		case dup:
			l.add(path+".name", m.Name, "repeats metrics[%d]", j)
		default:
			names[m.Name] = i
		}
		validateMetric(&l, path, m, t.Spec.Args)
	}
	args := map[string]int{}
	for i, a := range t.Spec.Args {
		ap := fmt.Sprintf("spec.args[%d].name", i)
		switch j, dup := args[a.Name]; {
		case a.Name == "":
			l.add(ap, nil, "is required")
		case dup:
			l.add(ap, a.Name, "repeats args[%d]", j)
		default:
			args[a.Name] = i
		}
	}
	return l.errs
}

func validateMetric(l *errList, path string, m *v1alpha1.Metric, args []v1alpha1.Argument) {
	if m.Interval != nil {
		validateDuration(l, path+".interval", m.Interval, true)
	}
	if m.InitialDelay != nil {
		validateDuration(l, path+".initialDelay", m.InitialDelay, false)
	}
	if m.WaitForData != nil {
		validateDuration(l, path+".waitForData", m.WaitForData, false)
	}
	if m.Count != nil {
		switch {
		case *m.Count < 1:
			l.add(path+".count", *m.Count, "must be >= 1")
		case *m.Count > 1 && m.Interval == nil:
			l.add(path+".count", *m.Count, "needs an interval to measure more than once")
		}
	}
	nonNegative(l, path+".failureLimit", m.FailureLimit)
	nonNegative(l, path+".inconclusiveLimit", m.InconclusiveLimit)
	if m.ConsecutiveErrorLimit != nil {
		nonNegative(l, path+".consecutiveErrorLimit", *m.ConsecutiveErrorLimit)
	}
	for _, c := range []struct{ name, expr string }{
		{"successCondition", m.SuccessCondition},
		{"failureCondition", m.FailureCondition},
	} {
		if c.expr == "" {
			continue
		}
		if _, err := CompileCondition(c.expr); err != nil {
			l.add(path+"."+c.name, c.expr, "does not compile: %s", oneLine(err.Error()))
		}
	}
	if m.InconclusivePolicy != "" && !slices.Contains(inconclusivePolicies, m.InconclusivePolicy) {
		l.add(path+".inconclusivePolicy", string(m.InconclusivePolicy), "is not one of Pause, Fail, Ignore")
	}
	set := ProviderNames(m.Provider)
	switch len(set) {
	case 0:
		l.add(path+".provider", nil, "needs exactly one provider: %s", strings.Join(providers, ", "))
		return
	case 1:
	default:
		l.add(path+".provider", nil, "has %s; set exactly one", strings.Join(set, " and "))
	}
	p := path + ".provider"
	if b := m.Provider.Builtin; b != nil {
		validateBuiltin(l, p+".builtin", b)
	}
	if s := m.Provider.Scrape; s != nil {
		validateScrape(l, p+".scrape", s)
	}
	if pm := m.Provider.Prometheus; pm != nil {
		validatePrometheus(l, p+".prometheus", pm, args)
	}
	if w := m.Provider.Web; w != nil {
		validateWeb(l, p+".web", w, args)
	}
	if c := m.Provider.Command; c != nil {
		validateCommand(l, p+".command", c, args)
	}
	if j := m.Provider.Job; j != nil {
		validateJob(l, p+".job", j, args)
	}
}

func validateBuiltin(l *errList, bp string, b *v1alpha1.BuiltinMetric) {
	if !slices.Contains(builtinMetrics, b.Metric) {
		if b.Metric == "" {
			l.add(bp+".metric", nil, "is required; one of %s", strings.Join(builtinMetrics, ", "))
		} else {
			l.add(bp+".metric", b.Metric, "is not one of %s", strings.Join(builtinMetrics, ", "))
		}
	}
	if b.Window != nil {
		validateDuration(l, bp+".window", b.Window, true)
	}
	nonNegative(l, bp+".minRequests", b.MinRequests)
}

// conditionEnv is the environment conditions are compiled against and run with:
// result and baseline are float64, args maps argument names to values.
var conditionEnv = map[string]any{
	"result":   float64(0),
	"baseline": float64(0),
	"args":     map[string]string{},
}

// CompileCondition compiles a successCondition or failureCondition. The program must be run
// with an environment map holding "result" (float64), "baseline" (float64) and "args"
// (map[string]string), and yields a bool.
func CompileCondition(cond string) (prog *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			prog, err = nil, fmt.Errorf("compile %q: %v", cond, r)
		}
	}()
	return expr.Compile(cond, expr.Env(conditionEnv), expr.AsBool())
}

// oneLine keeps the first line of a multi-line compiler message (expr adds a source excerpt).
func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

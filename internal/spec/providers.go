package spec

import (
	"crypto/x509"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"ramp.dev/ramp/api/v1alpha1"
)

// providers are the analysis providers by name: the JSON names of v1alpha1.MetricProvider's
// fields.
var providers = []string{"builtin", "scrape", "prometheus", "web", "command", "job"}

var inconclusivePolicies = []v1alpha1.InconclusivePolicy{v1alpha1.InconclusivePause, v1alpha1.InconclusiveFail, v1alpha1.InconclusiveIgnore}

// PrometheusReducers are the values of prometheus rangeQuery.reduce.
var PrometheusReducers = []string{"last", "avg", "min", "max", "sum"}

// TemplateVariables are the variables providers replace in queries, URLs, bodies, headers and
// command arguments ({{name}}), besides {{args.NAME}}.
var TemplateVariables = []string{"rollout", "revision", "baselineRevision", "role", "namespace", "service", "interval", "podTemplateHash", "baselinePodTemplateHash"}

// TemplateVar matches a template variable, {{name}} or {{ name }}; group 1 is the name.
var TemplateVar = regexp.MustCompile(`\{\{\s*([^{}\s]*)\s*\}\}`)

// ProviderNames returns the JSON names of the providers set in p, in field order.
func ProviderNames(p v1alpha1.MetricProvider) []string {
	v := reflect.ValueOf(p)
	var names []string
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// headerName is an HTTP token (RFC 9110).
	headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	awsRegion  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
)

func validateScrape(l *errList, p string, s *v1alpha1.ScrapeMetric) {
	validateSeries(l, p, s.Metric, s.Labels, true)
	if s.DivideBy != nil {
		validateSeries(l, p+".divideBy", s.DivideBy.Metric, s.DivideBy.Labels, false)
	}
	nonNegative(l, p+".minTotal", s.MinTotal)
	if s.Path != "" && !strings.HasPrefix(s.Path, "/") {
		l.add(p+".path", s.Path, "must start with /")
	}
	if s.Timeout != nil {
		validateDuration(l, p+".timeout", s.Timeout, true)
	}
}

func validateSeries(l *errList, p, metric string, labels map[string]string, required bool) {
	switch {
	case metric == "" && required:
		l.add(p+".metric", nil, "is required")
	case metric != "" && !metricName.MatchString(metric):
		l.add(p+".metric", metric, "is not a Prometheus metric name")
	}
	validateLabelNames(l, p+".labels", labels)
}

// validateLabelNames checks the names of label matchers.
func validateLabelNames(l *errList, p string, labels map[string]string) {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !labelName.MatchString(k) {
			l.add(p, k, "is not a Prometheus label name")
		}
	}
}

func validatePrometheus(l *errList, p string, pm *v1alpha1.PrometheusMetric, args []v1alpha1.Argument) {
	validateURL(l, p+".address", pm.Address, args)
	if strings.TrimSpace(pm.Query) == "" {
		l.add(p+".query", nil, "is required")
	} else {
		validateTemplated(l, p+".query", pm.Query, args)
	}
	if rq := pm.RangeQuery; rq != nil {
		if rq.Range != nil {
			validateDuration(l, p+".rangeQuery.range", rq.Range, true)
		}
		if rq.Step != nil {
			validateDuration(l, p+".rangeQuery.step", rq.Step, true)
		}
		if rq.Reduce != "" && !slices.Contains(PrometheusReducers, rq.Reduce) {
			l.add(p+".rangeQuery.reduce", rq.Reduce, "is not one of %s", strings.Join(PrometheusReducers, ", "))
		}
	}
	validateHeaders(l, p+".headers", pm.Headers, args)
	bearer := validateSecret(l, p, "bearerToken", pm.BearerToken, pm.BearerTokenFile, pm.BearerTokenEnv, pm.BearerTokenSecretRef)
	if ba := pm.BasicAuth; ba != nil {
		bp := p + ".basicAuth"
		if !validateSecret(l, bp, "username", ba.Username, "", "", ba.UsernameSecretRef) {
			l.add(bp+".username", nil, "is required (or usernameSecretRef)")
		}
		if !validateSecret(l, bp, "password", ba.Password, ba.PasswordFile, ba.PasswordEnv, ba.PasswordSecretRef) {
			l.add(bp+".password", nil, "is required (or passwordFile, passwordEnv or passwordSecretRef)")
		}
		if bearer {
			l.add(bp, nil, "is set together with a bearer token; set one")
		}
	}
	if tc := pm.TLSConfig; tc != nil {
		tp := p + ".tlsConfig"
		validateSecret(l, tp, "ca", tc.CA, tc.CAFile, "", tc.CASecretRef)
		if tc.CA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(tc.CA)) {
			l.add(tp+".ca", nil, "holds no PEM certificate")
		}
		cert := validateSecret(l, tp, "cert", tc.Cert, tc.CertFile, "", tc.CertSecretRef)
		key := validateSecret(l, tp, "key", "", tc.KeyFile, "", tc.KeySecretRef)
		switch {
		case cert && !key:
			l.add(tp+".keyFile", nil, "is required with a client certificate (or keySecretRef)")
		case key && !cert:
			l.add(tp+".certFile", nil, "is required with a client key (or cert or certSecretRef)")
		}
		if strings.HasPrefix(pm.Address, "http://") {
			l.add(tp, nil, "is set but address %q is not https://", pm.Address)
		}
	}
	if sv := pm.SigV4; sv != nil {
		sp := p + ".sigv4"
		if sv.RoleARN != "" && !strings.HasPrefix(sv.RoleARN, "arn:") {
			l.add(sp+".roleARN", sv.RoleARN, "is not an ARN (arn:aws:iam::ACCOUNT:role/NAME)")
		}
		if sv.Region == "" {
			l.add(sp+".region", nil, "is required: the AWS region of the workspace, e.g. eu-west-1")
		} else if !awsRegion.MatchString(sv.Region) {
			l.add(sp+".region", sv.Region, "is not an AWS region such as eu-west-1")
		}
		ak := validateSecret(l, sp, "accessKey", "", "", "", sv.AccessKeySecretRef)
		sk := validateSecret(l, sp, "secretKey", "", "", "", sv.SecretKeySecretRef)
		if ak != sk {
			l.add(sp, nil, "needs both accessKeySecretRef and secretKeySecretRef, or neither (the AWS default credential chain)")
		}
		if pm.BasicAuth != nil {
			l.add(sp, nil, "is set together with basicAuth; sigv4 signs the Authorization header, set one")
		}
		if bearer {
			l.add(sp, nil, "is set together with a bearer token; sigv4 signs the Authorization header, set one")
		}
	}
	if bearer || pm.BasicAuth != nil || pm.SigV4 != nil {
		for i, h := range pm.Headers {
			if strings.EqualFold(h.Key, "Authorization") {
				l.add(fmt.Sprintf("%s.headers[%d].key", p, i), h.Key, "is set together with bearerToken, basicAuth or sigv4; set one")
			}
		}
	}
	if pm.Timeout != nil {
		validateDuration(l, p+".timeout", pm.Timeout, true)
	}
}

// validateSecret checks the sources of the setting base+"."+name: the field itself, and the
// ones named with File, Env and SecretRef after it; at most one may be set. It reports
// whether one is.
func validateSecret(l *errList, base, name, inline, file, env string, ref *v1alpha1.SecretKeyRef) bool {
	p := base + "." + name
	var set []string
	for _, f := range []struct{ name, v string }{{name, inline}, {name + "File", file}, {name + "Env", env}} {
		if f.v != "" {
			set = append(set, f.name)
		}
	}
	if ref != nil {
		set = append(set, name+"SecretRef")
		if ref.Name == "" {
			l.add(p+"SecretRef.name", nil, "is required")
		} else if errs := validation.IsDNS1123Subdomain(ref.Name); len(errs) > 0 {
			l.add(p+"SecretRef.name", ref.Name, "is not a Secret name: %s", strings.Join(errs, "; "))
		}
		if ref.Key == "" {
			l.add(p+"SecretRef.key", nil, "is required")
		} else if errs := validation.IsConfigMapKey(ref.Key); len(errs) > 0 {
			l.add(p+"SecretRef.key", ref.Key, "is not a Secret key: %s", strings.Join(errs, "; "))
		}
	}
	if len(set) > 1 {
		l.add(base, nil, "has %s; set at most one", strings.Join(set, " and "))
	}
	if env != "" && !envName.MatchString(env) {
		l.add(p+"Env", env, "is not an environment variable name")
	}
	return len(set) > 0
}

// SecretRef is a secret reference set in a provider, which only Kubernetes mode can read.
type SecretRef struct {
	// Path is the field's path under the provider, e.g. basicAuth.passwordSecretRef.
	Path string
	// Instead names what local mode reads instead.
	Instead string
}

// LocalModeMessage says why local mode refuses the reference and what to use.
func (r SecretRef) LocalModeMessage() string {
	return "a Kubernetes Secret cannot be read in local mode; use " + r.Instead
}

// PrometheusSecretRefs returns the secret references set in pm, in field order.
func PrometheusSecretRefs(pm *v1alpha1.PrometheusMetric) []SecretRef {
	var refs []SecretRef
	add := func(ref *v1alpha1.SecretKeyRef, path, instead string) {
		if ref != nil {
			refs = append(refs, SecretRef{Path: path, Instead: instead})
		}
	}
	add(pm.BearerTokenSecretRef, "bearerTokenSecretRef", "bearerTokenFile or bearerTokenEnv")
	if ba := pm.BasicAuth; ba != nil {
		add(ba.UsernameSecretRef, "basicAuth.usernameSecretRef", "basicAuth.username")
		add(ba.PasswordSecretRef, "basicAuth.passwordSecretRef", "basicAuth.passwordFile or basicAuth.passwordEnv")
	}
	if tc := pm.TLSConfig; tc != nil {
		add(tc.CASecretRef, "tlsConfig.caSecretRef", "tlsConfig.caFile or tlsConfig.ca")
		add(tc.CertSecretRef, "tlsConfig.certSecretRef", "tlsConfig.certFile")
		add(tc.KeySecretRef, "tlsConfig.keySecretRef", "tlsConfig.keyFile")
	}
	if sv := pm.SigV4; sv != nil {
		add(sv.AccessKeySecretRef, "sigv4.accessKeySecretRef", "the AWS default credential chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or sigv4.profile)")
		add(sv.SecretKeySecretRef, "sigv4.secretKeySecretRef", "the AWS default credential chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or sigv4.profile)")
	}
	return refs
}

func validateWeb(l *errList, p string, w *v1alpha1.WebMetric, args []v1alpha1.Argument) {
	validateURL(l, p+".url", w.URL, args)
	switch w.Method {
	case "", "GET":
		if w.Body != "" {
			l.add(p+".body", nil, "needs method POST")
		}
	case "POST":
	default:
		l.add(p+".method", w.Method, "is not GET or POST")
	}
	validateTemplated(l, p+".body", w.Body, args)
	validateHeaders(l, p+".headers", w.Headers, args)
	if _, err := ParseJSONPath(w.JSONPath); err != nil {
		l.add(p+".jsonPath", w.JSONPath, "does not parse: %s", strings.TrimPrefix(oneLine(err.Error()), fmt.Sprintf("parse JSONPath %q: ", w.JSONPath)))
	}
	if w.Timeout != nil {
		validateDuration(l, p+".timeout", w.Timeout, true)
	}
}

func validateCommand(l *errList, p string, c *v1alpha1.CommandMetric, args []v1alpha1.Argument) {
	if strings.TrimSpace(c.Command) == "" {
		l.add(p+".command", nil, "is required")
	}
	for i, a := range c.Args {
		validateTemplated(l, fmt.Sprintf("%s.args[%d]", p, i), a, args)
	}
	validateEnv(l, p+".env", c.Env)
	if c.Timeout != nil {
		validateDuration(l, p+".timeout", c.Timeout, true)
	}
}

func validateJob(l *errList, p string, j *v1alpha1.JobMetric, args []v1alpha1.Argument) {
	if j.Spec != nil {
		validateJobSpec(l, p, j, args)
	} else if strings.TrimSpace(j.Image) == "" {
		l.add(p+".image", nil, "is required")
	}
	for i, a := range j.Args {
		validateTemplated(l, fmt.Sprintf("%s.args[%d]", p, i), a, args)
	}
	validateEnv(l, p+".env", j.Env)
	validateLabels(l, p+".labels", j.Labels)
	validateAnnotations(l, p+".annotations", j.Annotations)
	if md := j.Metadata; md != nil {
		validateLabels(l, p+".metadata.labels", md.Labels)
		validateAnnotations(l, p+".metadata.annotations", md.Annotations)
	}
	if j.BackoffLimit != nil {
		nonNegative(l, p+".backoffLimit", *j.BackoffLimit)
	}
	if j.Timeout != nil {
		validateDuration(l, p+".timeout", j.Timeout, true)
	}
}

// validateJobSpec checks the full form of a job metric: the short form's fields are not
// given with it, the pod has containers, and what ramp sets itself is left to ramp. The rest
// of the pod template is the API server's to check.
func validateJobSpec(l *errList, p string, j *v1alpha1.JobMetric, args []v1alpha1.Argument) {
	sp := p + ".spec"
	for _, f := range []struct {
		name string
		set  bool
	}{{"image", j.Image != ""}, {"command", len(j.Command) > 0}, {"args", len(j.Args) > 0}, {"env", len(j.Env) > 0}} {
		if f.set {
			l.add(p+"."+f.name, nil, "belongs to the short form; with spec give it in spec.template.spec.containers")
		}
	}
	if j.BackoffLimit != nil && j.Spec.BackoffLimit != nil {
		l.add(p, nil, "has backoffLimit and spec.backoffLimit; give one")
	}
	if j.Spec.ActiveDeadlineSeconds != nil {
		l.add(sp+".activeDeadlineSeconds", *j.Spec.ActiveDeadlineSeconds, "is set by ramp from timeout; give timeout")
	}
	pod := &j.Spec.Template.Spec
	tp := sp + ".template.spec"
	switch pod.RestartPolicy {
	case "", corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure:
	default:
		l.add(tp+".restartPolicy", string(pod.RestartPolicy), "is not Never or OnFailure, which a Job needs")
	}
	if len(pod.Containers) == 0 {
		l.add(tp+".containers", nil, "is required: the container that runs the test")
	}
	names := map[string]int{}
	for i, c := range pod.Containers {
		cp := fmt.Sprintf("%s.containers[%d]", tp, i)
		switch {
		case c.Name == "":
			l.add(cp+".name", nil, "is required")
		case len(validation.IsDNS1123Label(c.Name)) > 0:
			l.add(cp+".name", c.Name, "is not a DNS-1123 label")
		default:
			if k, ok := names[c.Name]; ok {
				l.add(cp+".name", c.Name, "repeats containers[%d]", k)
			}
			names[c.Name] = i
		}
		if strings.TrimSpace(c.Image) == "" {
			l.add(cp+".image", nil, "is required")
		}
		for k, a := range c.Args {
			validateTemplated(l, fmt.Sprintf("%s.args[%d]", cp, k), a, args)
		}
	}
	validateLabels(l, sp+".template.metadata.labels", j.Spec.Template.Labels)
	validateAnnotations(l, sp+".template.metadata.annotations", j.Spec.Template.Annotations)
}

func validateLabels(l *errList, p string, labels map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		for _, msg := range validation.IsQualifiedName(k) {
			l.add(p, k, "is not a label name: %s", shortK8s(msg))
		}
		for _, msg := range validation.IsValidLabelValue(labels[k]) {
			l.add(p+"."+k, labels[k], "is not a label value: %s", shortK8s(msg))
		}
	}
}

func validateAnnotations(l *errList, p string, annotations map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(annotations)) {
		for _, msg := range validation.IsQualifiedName(k) {
			l.add(p, k, "is not an annotation name: %s", shortK8s(msg))
		}
	}
}

// shortK8s drops the examples and the regular expression from an apimachinery validation
// message.
func shortK8s(msg string) string {
	before, _, _ := strings.Cut(msg, " (e.g.")
	return before
}

func validateEnv(l *errList, p string, env []v1alpha1.EnvVar) {
	for i, e := range env {
		if !envName.MatchString(e.Name) {
			if e.Name == "" {
				l.add(fmt.Sprintf("%s[%d].name", p, i), nil, "is required")
			} else {
				l.add(fmt.Sprintf("%s[%d].name", p, i), e.Name, "is not an environment variable name")
			}
		}
	}
}

func validateHeaders(l *errList, p string, hs []v1alpha1.WebMetricHeader, args []v1alpha1.Argument) {
	for i, h := range hs {
		hp := fmt.Sprintf("%s[%d]", p, i)
		switch {
		case h.Key == "":
			l.add(hp+".key", nil, "is required")
		case !headerName.MatchString(h.Key):
			l.add(hp+".key", h.Key, "is not an HTTP header name")
		}
		validateTemplated(l, hp+".value", h.Value, args)
	}
}

// validateURL checks an http(s) URL; one with template variables is checked after a
// stand-in replaces them, and one that starts with a variable only for its variables.
func validateURL(l *errList, p, raw string, args []v1alpha1.Argument) {
	if strings.TrimSpace(raw) == "" {
		l.add(p, nil, "is required")
		return
	}
	if !validateTemplated(l, p, raw, args) || strings.HasPrefix(raw, "{{") {
		return // the scheme and host come from a variable
	}
	u, err := url.Parse(TemplateVar.ReplaceAllString(raw, "x"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.add(p, raw, "is not an http:// or https:// URL")
	}
}

// validateTemplated checks that text uses only known variables and declared arguments. It
// reports whether text is fine.
func validateTemplated(l *errList, p, text string, args []v1alpha1.Argument) bool {
	ok := true
	for _, m := range TemplateVar.FindAllStringSubmatch(text, -1) {
		name := m[1]
		if arg, isArg := strings.CutPrefix(name, "args."); isArg {
			if !slices.ContainsFunc(args, func(a v1alpha1.Argument) bool { return a.Name == arg }) {
				l.add(p, text, "uses {{%s}}, but the template has no argument %q", name, arg)
				ok = false
			}
			continue
		}
		if !slices.Contains(TemplateVariables, name) {
			l.add(p, text, "uses the unknown variable {{%s}}; known: %s, args.NAME", name, strings.Join(TemplateVariables, ", "))
			ok = false
		}
	}
	return ok
}

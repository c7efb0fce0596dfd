package kube

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/analysis/command"
)

// DefaultJobTimeout bounds a Job when its metric sets no timeout.
const DefaultJobTimeout = 10 * time.Minute

// Environment variables of a job metric's container, besides command's RAMP_ROLLOUT,
// RAMP_REVISION, RAMP_BASELINE_REVISION and RAMP_ROLE.
const (
	// EnvNamespace is the rollout's namespace, where the Job runs.
	EnvNamespace = "RAMP_NAMESPACE"
	// EnvService is the Service of the revision under analysis: the preview Service before a
	// blue-green switch, the canary Service of a canary. Empty when the rollout names none.
	EnvService = "RAMP_SERVICE"
	// EnvAnalysis is the analysis run's name.
	EnvAnalysis = "RAMP_ANALYSIS"
)

// Annotations on an analysis Job, for humans and `kubectl get -o yaml`, beside
// AnnotationRevision (the revision under analysis) and the label LabelRollout.
const (
	AnnotationAnalysis    = "ramp.dev/analysis"
	AnnotationMetric      = "ramp.dev/metric"
	AnnotationMeasurement = "ramp.dev/measurement"
)

const (
	// jobContainer names the Job's one container.
	jobContainer = "analysis"
	// jobGrace is how long past its timeout ramp still waits for a Job to report its end
	// (the Job controller marks it Failed with DeadlineExceeded at the timeout).
	jobGrace = time.Minute
	// labelJobName is the label the Job controller puts on a Job's pods.
	labelJobName = "batch.kubernetes.io/job-name"
)

// JobProvider is the analysis provider "job" (Kubernetes mode): each measurement runs the
// metric's container as a Kubernetes Job in the rollout's namespace, such as the test suite
// run against the preview before a blue-green switch, and waits for it. The Job completing
// is the result 1, failing the result 0.
//
// A Job's name derives from the rollout, the analysis run (its name and start), the metric
// and the measurement's number, so a controller that restarts mid-measurement finds the Job
// it created instead of starting a second one. The Rollout owns the Job (deleting the Rollout
// deletes it), and the provider deletes a rollout's older finished Jobs, keeping the last few
// for `kubectl logs`. A measurement whose run is dropped (the rollout aborted, was promoted
// or moved on) deletes its running Job.
type JobProvider struct {
	c      client.Client
	reader client.Reader
	poll   time.Duration
	keep   int
	now    func() time.Time
	log    *slog.Logger
}

var _ analysis.Provider = (*JobProvider)(nil)

// JobProviderOptions configure a JobProvider.
type JobProviderOptions struct {
	// Reader reads the Job and its pods while waiting, and lists old Jobs. Nil means the
	// client; a manager's API reader (no informer on Jobs, so no watch permission) is meant.
	Reader client.Reader
	// Poll is the wait between two reads of a running Job. Zero means 1s.
	Poll time.Duration
	// KeepFinished is how many finished Jobs of a rollout stay; older ones are deleted. Zero
	// means 3.
	KeepFinished int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger gets a line per Job created, found, finished or deleted. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// NewJobProvider returns a job provider that creates and deletes Jobs through c and reads
// the Rollout (for the owner reference) through it.
func NewJobProvider(c client.Client, o JobProviderOptions) *JobProvider {
	p := &JobProvider{c: c, reader: o.Reader, poll: o.Poll, keep: o.KeepFinished, now: o.Now, log: o.Logger}
	if p.reader == nil {
		p.reader = c
	}
	if p.poll <= 0 {
		p.poll = time.Second
	}
	if p.keep <= 0 {
		p.keep = 3
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p
}

// Measure creates the measurement's Job (or finds the one an earlier process created) and
// waits for it to complete or fail. A Job that is deleted before it ends, or that reports no
// end by its timeout plus a minute, is an error. When ctx ends the wait stops; when it ends
// because the run was dropped (analysis.ErrDropped), the Job is deleted too.
func (p *JobProvider) Measure(ctx context.Context, m v1alpha1.Metric, t analysis.Target) (analysis.Value, error) {
	if m.Provider.Job == nil {
		return analysis.Value{}, fmt.Errorf("metric %q has no job provider", m.Name)
	}
	timeout := DefaultJobTimeout
	if m.Provider.Job.Timeout != nil {
		var err error
		if timeout, err = analysis.Duration(m.Provider.Job.Timeout); err != nil {
			return analysis.Value{}, fmt.Errorf("timeout: %w", err)
		}
	}
	ro := &v1alpha1.Rollout{}
	if err := p.c.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Rollout}, ro); err != nil {
		return analysis.Value{}, fmt.Errorf("get rollout %s: %w", t.Rollout, err)
	}
	job, err := jobFor(ro, &m, t, timeout)
	if err != nil {
		return analysis.Value{}, err
	}
	log := p.log.With(keyRollout, t.Namespace+"/"+t.Rollout, "analysis", t.Run, "metric", m.Name, "job", job.Name)
	key := client.ObjectKeyFromObject(job)
	switch err := p.c.Create(ctx, job); {
	case apierrors.IsAlreadyExists(err):
		found := &batchv1.Job{}
		if err := p.reader.Get(ctx, key, found); err != nil {
			return analysis.Value{}, fmt.Errorf("get job %s: %w", job.Name, err)
		}
		if !ownedBy(found, ro.UID) {
			return analysis.Value{}, fmt.Errorf("job %s exists and is not this rollout's", job.Name)
		}
		log.Info("analysis job found; waiting for it")
	case err != nil:
		return analysis.Value{}, fmt.Errorf("create job %s: %w", job.Name, err)
	default:
		log.Info("analysis job created")
	}

	v, err := p.wait(ctx, key, timeout, log)
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), analysis.ErrDropped) {
			p.delete(context.WithoutCancel(ctx), job, log)
		}
		return analysis.Value{}, ctx.Err()
	}
	p.prune(ctx, ro, job.Name, log)
	return v, err
}

// wait polls the Job until it ends, ctx ends, or the Job is overdue.
func (p *JobProvider) wait(ctx context.Context, key types.NamespacedName, timeout time.Duration, log *slog.Logger) (analysis.Value, error) {
	for {
		j := &batchv1.Job{}
		err := p.reader.Get(ctx, key, j)
		switch {
		case ctx.Err() != nil:
			return analysis.Value{}, ctx.Err()
		case apierrors.IsNotFound(err):
			return analysis.Value{}, fmt.Errorf("job %s was deleted before it finished", key.Name)
		case err != nil:
			// A passing API error must not start a second test suite: keep waiting.
			log.Warn("read analysis job", "err", err)
		default:
			if v, done := p.outcome(ctx, j); done {
				log.Info("analysis job finished", "value", v.Text)
				return v, nil
			}
			if late := j.CreationTimestamp.Add(timeout + jobGrace); p.now().After(late) {
				return analysis.Value{}, fmt.Errorf("job %s has not finished %s after it was created (timeout %s)", key.Name, timeout+jobGrace, timeout)
			}
		}
		tm := time.NewTimer(p.poll)
		select {
		case <-ctx.Done():
			tm.Stop()
			return analysis.Value{}, ctx.Err()
		case <-tm.C:
		}
	}
}

// outcome is the value of a Job that ended: 1 when it completed, 0 when it failed, with the
// Job's failure reason and its failed container's exit code and termination message.
func (p *JobProvider) outcome(ctx context.Context, j *batchv1.Job) (analysis.Value, bool) {
	took := ""
	if j.Status.StartTime != nil && j.Status.CompletionTime != nil {
		took = " in " + j.Status.CompletionTime.Sub(j.Status.StartTime.Time).String()
	}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return analysis.Value{Result: 1, Text: fmt.Sprintf("1 (job %s complete%s)", j.Name, took)}, true
		case batchv1.JobFailed:
			why := c.Reason
			if c.Message != "" {
				why += ": " + c.Message
			}
			return analysis.Value{Result: 0, Text: fmt.Sprintf("0 (job %s failed: %s%s)", j.Name, why, p.podFailure(ctx, j))}, true
		}
	}
	return analysis.Value{}, false
}

// podFailure describes how the Job's last failed pod ended: "; pod X: exit code 1: <the end
// of its termination message or log>". Empty when no pod says.
func (p *JobProvider) podFailure(ctx context.Context, j *batchv1.Job) string {
	var pods corev1.PodList
	if err := p.reader.List(ctx, &pods, client.InNamespace(j.Namespace), client.MatchingLabels{labelJobName: j.Name}); err != nil {
		return ""
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	for _, pod := range pods.Items {
		for _, cs := range pod.Status.ContainerStatuses {
			term := cs.State.Terminated
			if term == nil || term.ExitCode == 0 {
				continue
			}
			s := fmt.Sprintf("; pod %s: exit code %d", pod.Name, term.ExitCode)
			if term.Reason != "" && term.Reason != "Error" {
				s += " (" + term.Reason + ")"
			}
			if msg := lastLines(term.Message); msg != "" {
				s += ": " + msg
			}
			return s
		}
	}
	return ""
}

// lastLines joins the last non-empty lines of a container's message, at most 500 bytes.
func lastLines(msg string) string {
	var lines []string
	for l := range strings.SplitSeq(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	s := strings.Join(lines, " | ")
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return s
}

// delete deletes the Job and its pods.
func (p *JobProvider) delete(ctx context.Context, j *batchv1.Job, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.c.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
		log.Warn("delete analysis job of a dropped run", "err", err)
		return
	}
	log.Info("analysis job deleted: its run was dropped")
}

// prune deletes the rollout's finished Jobs but the newest few (current among them).
func (p *JobProvider) prune(ctx context.Context, ro *v1alpha1.Rollout, current string, log *slog.Logger) {
	var jobs batchv1.JobList
	if err := p.reader.List(ctx, &jobs, client.InNamespace(ro.Namespace), client.MatchingLabels{LabelRollout: ro.Name}); err != nil {
		log.Warn("list analysis jobs", "err", err)
		return
	}
	var old []batchv1.Job
	for _, j := range jobs.Items {
		if j.Name != current && ownedBy(&j, ro.UID) && finished(&j) && j.DeletionTimestamp == nil {
			old = append(old, j)
		}
	}
	slices.SortFunc(old, func(a, b batchv1.Job) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	for i := range old {
		if i < p.keep-1 {
			continue
		}
		if err := p.c.Delete(ctx, &old[i], client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			log.Warn("delete old analysis job", "old", old[i].Name, "err", err)
			continue
		}
		log.Debug("old analysis job deleted", "old", old[i].Name)
	}
}

func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return true
		}
	}
	return false
}

// jobFor is the Job of one measurement of m: the metric's JobSpec (full form) or one
// container (short form), with ramp's variables, deadline and names.
func jobFor(ro *v1alpha1.Rollout, m *v1alpha1.Metric, t analysis.Target, timeout time.Duration) (*batchv1.Job, error) {
	jm := m.Provider.Job
	env := []corev1.EnvVar{
		{Name: command.EnvRollout, Value: t.Rollout},
		{Name: EnvNamespace, Value: t.Namespace},
		{Name: command.EnvRevision, Value: strconv.FormatInt(t.Revision, 10)},
		{Name: command.EnvBaselineRevision, Value: strconv.FormatInt(t.Baseline, 10)},
		{Name: command.EnvRole, Value: t.Role},
		{Name: EnvService, Value: t.Service},
		{Name: EnvAnalysis, Value: t.Run},
	}
	expand := func(path string, in []string) ([]string, error) {
		if in == nil {
			return nil, nil
		}
		out := make([]string, len(in))
		for i, a := range in {
			var err error
			if out[i], err = analysis.Expand(a, m, t); err != nil {
				return nil, fmt.Errorf("%sargs[%d]: %w", path, i, err)
			}
		}
		return out, nil
	}
	var spec batchv1.JobSpec
	if jm.Spec != nil {
		spec = *jm.Spec.DeepCopy()
		for i := range spec.Template.Spec.Containers {
			c := &spec.Template.Spec.Containers[i]
			var err error
			if c.Args, err = expand(fmt.Sprintf("spec.template.spec.containers[%d].", i), c.Args); err != nil {
				return nil, err
			}
			c.Env = append(slices.Clone(env), c.Env...)
			if c.TerminationMessagePolicy == "" {
				c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
			}
		}
	} else {
		args, err := expand("", jm.Args)
		if err != nil {
			return nil, err
		}
		if args == nil {
			args = []string{}
		}
		for _, e := range jm.Env {
			env = append(env, corev1.EnvVar{Name: e.Name, Value: e.Value})
		}
		spec.Template.Spec.Containers = []corev1.Container{{
			Name: jobContainer, Image: jm.Image, Command: jm.Command, Args: args, Env: env,
			// A failing test suite's last lines become the measurement's message.
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}}
	}
	if spec.Template.Spec.RestartPolicy == "" {
		spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	backoff := int32(0)
	switch {
	case jm.BackoffLimit != nil:
		backoff = *jm.BackoffLimit
	case spec.BackoffLimit != nil:
		backoff = *spec.BackoffLimit
	}
	deadline := int64(math.Ceil(timeout.Seconds()))
	spec.BackoffLimit, spec.ActiveDeadlineSeconds = &backoff, &deadline
	spec.Template.Labels = merged(spec.Template.Labels, jm.Labels)
	spec.Template.Annotations = merged(spec.Template.Annotations, jm.Annotations)
	var jobLabels, jobAnnotations map[string]string
	if jm.Metadata != nil {
		jobLabels, jobAnnotations = jm.Metadata.Labels, jm.Metadata.Annotations
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:      jobName(t, m.Name),
			Namespace: ro.Namespace,
			Labels:    merged(jobLabels, map[string]string{LabelRollout: ro.Name}),
			Annotations: merged(jobAnnotations, map[string]string{
				AnnotationAnalysis: t.Run, AnnotationMetric: m.Name,
				AnnotationMeasurement: strconv.Itoa(int(t.Measurement)), AnnotationRevision: strconv.FormatInt(t.Revision, 10),
			}),
			OwnerReferences: []metav1.OwnerReference{*ownerRef(ro)},
		},
		Spec: spec,
	}, nil
}

// merged returns a's entries with b's put over them, nil when both are empty.
func merged(a, b map[string]string) map[string]string {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// jobName is the measurement's Job name: readable (rollout, run, metric, measurement) and,
// through a hash of the run's start, distinct from a retried run's; at most 63 characters,
// as the Job controller puts it in a label of the pods.
func jobName(t analysis.Target, metric string) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%s\x00%d", t.Namespace, t.Rollout, t.Run, t.Since.Unix(), metric, t.Measurement)
	suffix := fmt.Sprintf("-%d-%08x", t.Measurement, h.Sum32())
	base := dnsLabel(t.Rollout + "-" + t.Run + "-" + metric)
	if n := 63 - len(suffix); len(base) > n {
		base = strings.TrimRight(base[:n], "-")
	}
	return base + suffix
}

// dnsLabel lower-cases s and turns what a DNS label may not hold into dashes.
func dnsLabel(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}

package kube

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// fullJobTemplate is a job metric in the full form, as Argo Rollouts users write it: a
// service account (IRSA), env and envFrom from Secrets, a Secret volume, resources.
const fullJobTemplate = `apiVersion: ramp.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: suite}
spec:
  metrics:
  - name: smoke
    provider:
      job:
        metadata:
          labels: {team: chat}
          annotations: {owner: chat-team}
        labels: {kwok.ramp.dev/extra: "yes"}
        spec:
          backoffLimit: 1
          template:
            metadata:
              labels: {app: suite}
            spec:
              serviceAccountName: suite-runner
              containers:
              - name: suite
                image: example.com/suite:v2
                args: ["--base-url=http://{{service}}.{{namespace}}"]
                env:
                - name: API_KEY
                  valueFrom: {secretKeyRef: {name: suite-secrets, key: api-key}}
                envFrom:
                - secretRef: {name: suite-env}
                resources:
                  requests: {cpu: 250m, memory: 128Mi}
                  limits: {memory: 256Mi}
                volumeMounts:
                - {name: certs, mountPath: /certs, readOnly: true}
              volumes:
              - name: certs
                secret: {secretName: suite-certs}
`

// loadFullJobMetric loads fullJobTemplate as ramp apply and lint do.
func loadFullJobMetric(t *testing.T) v1alpha1.Metric {
	t.Helper()
	b, err := spec.Load([]byte(fullJobTemplate))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return b.AnalysisTemplates[0].Spec.Metrics[0]
}

// checkFullJob checks that the pod template of fullJobTemplate reached j, with ramp's
// additions.
func checkFullJob(t *testing.T, j *batchv1.Job) {
	t.Helper()
	if j.Labels["team"] != "chat" || j.Labels[LabelRollout] != "chat-api" || j.Annotations["owner"] != "chat-team" || j.Annotations[AnnotationMetric] != "smoke" {
		t.Errorf("job labels %v annotations %v", j.Labels, j.Annotations)
	}
	if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 1 || j.Spec.ActiveDeadlineSeconds == nil || *j.Spec.ActiveDeadlineSeconds != 600 {
		t.Errorf("backoffLimit %v activeDeadlineSeconds %v; want 1, 600", j.Spec.BackoffLimit, j.Spec.ActiveDeadlineSeconds)
	}
	pod := j.Spec.Template
	if pod.Labels["app"] != "suite" || pod.Labels["kwok.ramp.dev/extra"] != "yes" {
		t.Errorf("pod labels %v", pod.Labels)
	}
	ps := pod.Spec
	if ps.ServiceAccountName != "suite-runner" || ps.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("serviceAccountName %q restartPolicy %q", ps.ServiceAccountName, ps.RestartPolicy)
	}
	if len(ps.Volumes) != 1 || ps.Volumes[0].Secret == nil || ps.Volumes[0].Secret.SecretName != "suite-certs" {
		t.Errorf("volumes %+v", ps.Volumes)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("containers %+v", ps.Containers)
	}
	c := ps.Containers[0]
	if c.Name != "suite" || c.Image != "example.com/suite:v2" || !slices.Equal(c.Args, []string{"--base-url=http://chat-api-preview.jobs"}) {
		t.Errorf("container %s image %s args %v", c.Name, c.Image, c.Args)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "suite-env" {
		t.Errorf("envFrom %+v", c.EnvFrom)
	}
	if cpu := c.Resources.Requests[corev1.ResourceCPU]; cpu.Cmp(resource.MustParse("250m")) != 0 {
		t.Errorf("cpu request %s", cpu.String())
	}
	if mem := c.Resources.Limits[corev1.ResourceMemory]; mem.Cmp(resource.MustParse("256Mi")) != 0 {
		t.Errorf("memory limit %s", mem.String())
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/certs" {
		t.Errorf("volumeMounts %+v", c.VolumeMounts)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if k := env["API_KEY"].ValueFrom; k == nil || k.SecretKeyRef == nil || k.SecretKeyRef.Name != "suite-secrets" || k.SecretKeyRef.Key != "api-key" {
		t.Errorf("API_KEY %+v", env["API_KEY"])
	}
	if env["RAMP_SERVICE"].Value != "chat-api-preview" || env["RAMP_REVISION"].Value != "2" {
		t.Errorf("ramp's env missing: %+v", c.Env)
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy %q", c.TerminationMessagePolicy)
	}
}

// TestJobProviderFullForm: the job provider creates the Job of a full-form metric with its
// pod template as written (service account, Secret env and volumes, resources) and ramp's
// variables, deadline and names added; the Job completing is the result 1.
func TestJobProviderFullForm(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: "jobs", UID: "ro-uid"}}
	var created []*batchv1.Job
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(ro).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if j, ok := obj.(*batchv1.Job); ok {
				created = append(created, j.DeepCopy())
				// The Job controller's part: the suite passes.
				j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
			}
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	p := NewJobProvider(c, JobProviderOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	v, err := p.Measure(context.Background(), loadFullJobMetric(t), jobTarget(1))
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != 1 {
		t.Errorf("value %+v; want 1", v)
	}
	if len(created) != 1 {
		t.Fatalf("%d jobs created; want 1", len(created))
	}
	checkFullJob(t, created[0])
	if !ownedBy(created[0], "ro-uid") {
		t.Errorf("job owners %+v", created[0].OwnerReferences)
	}
}

// TestJobSpecValidation: the full form refuses the short form's fields beside it, a pod
// without containers, and what ramp sets itself.
func TestJobSpecValidation(t *testing.T) {
	job := func(body string) string {
		return "apiVersion: ramp.dev/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: suite}\nspec:\n  metrics:\n  - name: smoke\n    provider:\n      job:\n" + body
	}
	for _, tt := range []struct{ name, body, want string }{
		{"image beside spec", "        image: x\n        spec: {template: {spec: {containers: [{name: a, image: b}]}}}\n",
			"spec.metrics[0].provider.job.image: belongs to the short form; with spec give it in spec.template.spec.containers"},
		{"no containers", "        spec: {template: {spec: {serviceAccountName: s}}}\n",
			"spec.metrics[0].provider.job.spec.template.spec.containers: is required: the container that runs the test"},
		{"deadline", "        spec: {activeDeadlineSeconds: 5, template: {spec: {containers: [{name: a, image: b}]}}}\n",
			"spec.metrics[0].provider.job.spec.activeDeadlineSeconds: 5 is set by ramp from timeout; give timeout"},
		{"restart policy", "        spec: {template: {spec: {restartPolicy: Always, containers: [{name: a, image: b}]}}}\n",
			`spec.metrics[0].provider.job.spec.template.spec.restartPolicy: "Always" is not Never or OnFailure, which a Job needs`},
		{"unknown pod field", "        spec: {template: {spec: {serviceAcount: s, containers: [{name: a, image: b}]}}}\n",
			"spec.metrics[0].provider.job.spec.template.spec.serviceAcount: unknown field"},
		{"neither", "        timeout: 5m\n", "spec.metrics[0].provider.job.image: is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := spec.Load([]byte(job(tt.body)))
			if err == nil || err.Error() != tt.want {
				t.Errorf("load: %v\nwant %s", err, tt.want)
			}
		})
	}
}

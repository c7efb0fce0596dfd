package kube

import (
	"strings"
	"testing"

	"ramp.dev/ramp/api/v1alpha1"
)

// TestRevisionSelector: each revision's requests for the dashboard's charts: the router's
// canary or stable Service, else the app's series by pod-template-hash, else why not.
func TestRevisionSelector(t *testing.T) {
	withRevs := func(ro *v1alpha1.Rollout) *v1alpha1.Rollout {
		ro.Status.Revisions = []v1alpha1.RevisionStatus{{Revision: 1, PodTemplateHash: "h1"}, {Revision: 2, PodTemplateHash: "h2"}, {Revision: 3, PodTemplateHash: "h3"}}
		ro.Status.StableRevision, ro.Status.CanaryRevision = 2, 3
		return ro
	}
	istio := withRevs(istioRollout())
	istioApp := withRevs(withApp(istioRollout(), v1alpha1.AppMetrics{FirstToken: "ft"}))
	appOnly := withRevs(withApp(canaryRollout(), v1alpha1.AppMetrics{}))
	for _, tc := range []struct {
		name         string
		ro           *v1alpha1.Rollout
		rev          int64
		requests, ft string
		err          string
	}{
		{"istio canary", istio, 3, `destination_service_name="chat-api-canary"`, "", ""},
		{"istio stable", istio, 2, `destination_service_name="chat-api-stable"`, "", ""},
		{"istio, an old revision", istio, 1, "", "", "revision 1 is neither canary nor stable"},
		{"istio with app series: first token", istioApp, 3, `destination_service_name="chat-api-canary"`, `ft_bucket{namespace="` + ns + `", pod_template_hash="h3"}`, ""},
		{"istio with app series: an old revision by its hash", istioApp, 1, `http_requests_total{namespace="` + ns + `", pod_template_hash="h1"}`, `pod_template_hash="h1"`, ""},
		{"app series", appOnly, 2, `pod_template_hash="h2"`, "", ""},
		{"app series, unknown revision", appOnly, 9, "", "", "revision 9 of rollout chat-api runs no pods with a known pod-template-hash"},
		{"no router metrics, no app series", withRevs(canaryRollout()), 2, "", "", "set spec.appMetrics"},
	} {
		sel, err := RevisionSelector(tc.ro, tc.rev)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !strings.Contains(sel.Requests(), tc.requests) || !strings.Contains(sel.FirstTokenBuckets(), tc.ft) || (tc.ft == "") != (sel.FirstTokenBuckets() == "") {
			t.Errorf("%s: requests %s, first token %q", tc.name, sel.Requests(), sel.FirstTokenBuckets())
		}
	}
}

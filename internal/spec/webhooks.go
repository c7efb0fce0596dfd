package spec

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"ramp.dev/ramp/api/v1alpha1"
)

// Defaults of a gate webhook (spec.webhooks[]).
const (
	DefaultWebhookTimeout  = 10 * time.Second
	DefaultWebhookInterval = 10 * time.Second
)

// WebhookTypes are the values of spec.webhooks[].type.
var WebhookTypes = []v1alpha1.WebhookType{
	v1alpha1.WebhookPreRollout, v1alpha1.WebhookConfirmTrafficIncrease, v1alpha1.WebhookConfirmPromotion,
	v1alpha1.WebhookPostRollout, v1alpha1.WebhookRollback,
}

// WebhookFailurePolicies are the values of spec.webhooks[].failurePolicy.
var WebhookFailurePolicies = []v1alpha1.WebhookFailurePolicy{v1alpha1.WebhookHold, v1alpha1.WebhookAbort, v1alpha1.WebhookIgnore}

// WebhookTimeout is w's timeout, its default when unset.
func WebhookTimeout(w *v1alpha1.Webhook) time.Duration {
	if d, err := ParseDuration(w.Timeout); err == nil && d > 0 {
		return d
	}
	return DefaultWebhookTimeout
}

// WebhookInterval is how long a held gate of w waits before it is asked again.
func WebhookInterval(w *v1alpha1.Webhook) time.Duration {
	if d, err := ParseDuration(w.Interval); err == nil && d > 0 {
		return d
	}
	return DefaultWebhookInterval
}

// WebhookPolicy is w's failure policy, Hold when unset.
func WebhookPolicy(w *v1alpha1.Webhook) v1alpha1.WebhookFailurePolicy {
	if w.FailurePolicy == "" {
		return v1alpha1.WebhookHold
	}
	return w.FailurePolicy
}

// validateWebhooks checks spec.webhooks.
func validateWebhooks(l *errList, s *v1alpha1.RolloutSpec) {
	seen := map[string]int{}
	for i := range s.Webhooks {
		w := &s.Webhooks[i]
		p := fmt.Sprintf("spec.webhooks[%d]", i)
		switch {
		case w.Name == "":
			l.add(p+".name", nil, "is required")
		case len(validation.IsDNS1123Label(w.Name)) > 0:
			l.add(p+".name", w.Name, "is not a name of lower-case letters, digits and '-' (at most 63)")
		default:
			if j, ok := seen[w.Name]; ok {
				l.add(p+".name", w.Name, "repeats spec.webhooks[%d].name", j)
			} else {
				seen[w.Name] = i
			}
		}
		switch {
		case w.Type == "":
			l.add(p+".type", nil, "is required: one of %s", webhookTypeList())
		case !slices.Contains(WebhookTypes, w.Type):
			l.add(p+".type", string(w.Type), "is not one of %s", webhookTypeList())
		case s.Strategy.RollingUpdate != nil && (w.Type == v1alpha1.WebhookConfirmTrafficIncrease || w.Type == v1alpha1.WebhookConfirmPromotion):
			l.add(p+".type", string(w.Type), "needs a canary or blueGreen strategy: a rolling update's traffic follows its instances, and its last instance is its promotion (use pre-rollout, or a canary)")
		}
		if !validateSecret(l, p, "url", w.URL, w.URLFile, w.URLEnv, w.URLSecretRef) {
			l.add(p+".url", nil, "is required (or urlFile, urlEnv or urlSecretRef)")
		} else if w.URL != "" {
			if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				l.add(p+".url", w.URL, "is not an http:// or https:// URL")
			}
		}
		if w.Timeout != nil {
			validateDuration(l, p+".timeout", w.Timeout, true)
		}
		if w.Interval != nil {
			validateDuration(l, p+".interval", w.Interval, true)
		}
		if w.FailurePolicy != "" {
			switch {
			case !slices.Contains(WebhookFailurePolicies, w.FailurePolicy):
				l.add(p+".failurePolicy", string(w.FailurePolicy), "is not one of Hold, Abort, Ignore")
			case w.Type != "" && !w.Type.Blocking():
				l.add(p+".failurePolicy", string(w.FailurePolicy), "is only for the gates that hold (pre-rollout, confirm-traffic-increase, confirm-promotion); a %s webhook only informs", w.Type)
			}
		}
		for k := range w.Metadata {
			if strings.TrimSpace(k) == "" {
				l.add(p+".metadata", k, "has an empty key")
			}
		}
	}
}

func webhookTypeList() string {
	names := make([]string, len(WebhookTypes))
	for i, t := range WebhookTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// checkWebhooksLocal reports the webhook fields local mode cannot read.
func checkWebhooksLocal(l *errList, s *v1alpha1.RolloutSpec) {
	for i, w := range s.Webhooks {
		if w.URLSecretRef != nil {
			l.add(fmt.Sprintf("spec.webhooks[%d].urlSecretRef", i), nil, "names a Kubernetes Secret, which local mode cannot read; use url, urlFile or urlEnv")
		}
	}
}

// WebhookWhere says where w's URL points, for messages: an inline URL without its user
// information and query (they may hold a token), else where the URL is read from.
func WebhookWhere(w *v1alpha1.Webhook) string {
	switch {
	case w.URL != "":
		u, err := url.Parse(w.URL)
		if err != nil {
			return "the URL in url"
		}
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		return u.String()
	case w.URLFile != "":
		return "the URL in " + w.URLFile
	case w.URLEnv != "":
		return "the URL in $" + w.URLEnv
	case w.URLSecretRef != nil:
		return fmt.Sprintf("the URL in secret %s key %s", w.URLSecretRef.Name, w.URLSecretRef.Key)
	}
	return "no URL"
}

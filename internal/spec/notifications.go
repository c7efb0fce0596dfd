package spec

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"ramp.dev/ramp/api/v1alpha1"
)

// notificationName is what a notification's name may be: it is shown in logs and events.
var notificationName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

// validateNotifications checks spec.notifications.
func validateNotifications(l *errList, ns []v1alpha1.Notification) {
	seen := map[string]bool{}
	for i := range ns {
		n := &ns[i]
		p := fmt.Sprintf("spec.notifications[%d]", i)
		switch {
		case n.Name == "":
			l.add(p+".name", nil, "is required")
		case !notificationName.MatchString(n.Name):
			l.add(p+".name", n.Name, "is not a name: up to 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit")
		case seen[n.Name]:
			l.add(p+".name", n.Name, "is used by another notification; names are unique")
		}
		seen[n.Name] = true
		switch n.Type {
		case "", v1alpha1.NotificationWebhook, v1alpha1.NotificationSlack, v1alpha1.NotificationTeams:
		default:
			l.add(p+".type", string(n.Type), "is not one of webhook, slack, teams")
		}
		if !validateSecret(l, p, "url", n.URL, n.URLFile, n.URLEnv, n.URLSecretRef) {
			l.add(p+".url", nil, "is required (or urlFile, urlEnv or urlSecretRef)")
		} else if n.URL != "" {
			if err := CheckNotificationURL(n.URL); err != nil {
				// The value is not shown: a webhook URL is a secret, and this one may be
				// nearly right.
				l.add(p+".url", nil, "%s", err.Error())
			}
		}
		for j := range n.Headers {
			h := &n.Headers[j]
			hp := fmt.Sprintf("%s.headers[%d]", p, j)
			switch {
			case h.Name == "":
				l.add(hp+".name", nil, "is required")
			case !httpguts.ValidHeaderFieldName(h.Name):
				l.add(hp+".name", h.Name, "is not an HTTP header name")
			case strings.EqualFold(h.Name, "Content-Type") || strings.EqualFold(h.Name, "Content-Length") || strings.EqualFold(h.Name, "Host"):
				l.add(hp+".name", h.Name, "is set by ramp")
			}
			if !validateSecret(l, hp, "value", h.Value, h.ValueFile, h.ValueEnv, h.ValueSecretRef) {
				l.add(hp+".value", nil, "is required (or valueFile, valueEnv or valueSecretRef)")
			} else if h.Value != "" && !httpguts.ValidHeaderFieldValue(h.Value) {
				l.add(hp+".value", nil, "is not a valid HTTP header value (a control character or newline)")
			}
		}
		for j, e := range n.Events {
			if !slices.Contains(v1alpha1.NotifyEvents, e) {
				l.add(fmt.Sprintf("%s.events[%d]", p, j), e, "is not one of %s", strings.Join(v1alpha1.NotifyEvents, ", "))
			}
		}
	}
}

// CheckNotificationURL checks a notification URL, from the spec or read from a file, the
// environment or a Secret. Its error does not repeat the URL, which is a secret.
func CheckNotificationURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("has the scheme %q; want http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// NotificationSecretRefs returns the secret references of r's notifications, with their
// paths, for local mode to refuse.
func NotificationSecretRefs(r *v1alpha1.Rollout) []SecretRef {
	var refs []SecretRef
	for i := range r.Spec.Notifications {
		n := &r.Spec.Notifications[i]
		p := fmt.Sprintf("spec.notifications[%d]", i)
		if n.URLSecretRef != nil {
			refs = append(refs, SecretRef{Path: p + ".urlSecretRef", Instead: "urlFile or urlEnv"})
		}
		for j := range n.Headers {
			if n.Headers[j].ValueSecretRef != nil {
				refs = append(refs, SecretRef{Path: fmt.Sprintf("%s.headers[%d].valueSecretRef", p, j), Instead: "valueFile or valueEnv"})
			}
		}
	}
	return refs
}

package kube

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/driver"
	"ramp.dev/ramp/internal/notify"
)

var _ driver.Notifying = (*mode)(nil)

// Notifier is the controller's notifier: it sends spec.notifications, reading their
// Secrets with the reconciler's secret reader.
func (m *mode) Notifier() driver.Notifier {
	if m.r.notifier == nil {
		return nil
	}
	return m.r.notifier
}

// newNotifier is the reconciler's notifier: a notification given up on is a
// NotificationFailed Warning event on its Rollout.
func (r *Reconciler) newNotifier() *notify.Notifier {
	return notify.New(notify.Config{Secrets: r.secrets, Log: r.log, Failed: func(ro *v1alpha1.Rollout, rev int64, msg string) {
		r.record(ro, corev1.EventTypeWarning, "NotificationFailed", msg, rev)
	}})
}

// notifierCloser is a manager runnable that, when the manager stops, lets the queued
// notifications go out for a few seconds more.
func (r *Reconciler) notifierCloser() manager.Runnable {
	return manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.notifier.Close(stop); err != nil {
			r.log.Warn("stop notifications", "err", err)
		}
		return nil
	})
}

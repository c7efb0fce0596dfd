package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/internal/analysis"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// secretReader reads the Secrets that analysis providers' secret references name, one get
// each (the controller neither lists nor watches Secrets). It implements
// analysis.SecretReader.
type secretReader struct {
	c client.Reader
}

var _ analysis.SecretReader = secretReader{}

func (s secretReader) SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error) {
	var sec corev1.Secret
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("secret %s/%s not found", namespace, name)
		}
		return nil, fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
	}
	v, ok := sec.Data[key]
	if !ok {
		keys := make([]string, 0, len(sec.Data))
		for k := range sec.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return nil, fmt.Errorf("secret %s/%s has no key %q (its keys: %s)", namespace, name, key, strings.Join(keys, ", "))
	}
	return v, nil
}

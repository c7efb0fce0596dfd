// Package secretsource reads a setting that the spec lets a user give in one of four ways: the
// field itself, a file (the field's name + "File"), an environment variable (+ "Env") or a key
// of a Kubernetes Secret in the rollout's namespace (+ "SecretRef", Kubernetes mode only).
package secretsource

import (
	"context"
	"fmt"
	"os"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
)

// Reader reads one key of a Kubernetes Secret. Its errors name the Secret and key, never the
// value.
type Reader interface {
	SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error)
}

// Read returns the value of the setting at path from the one source that is set: inline,
// file (read now), env or ref (through secrets in namespace; nil secrets means local mode,
// which cannot read one), spaces trimmed. ok is false when none is set. Errors name the field
// (name turns a field path into what the user wrote, nil keeps it), never the value.
func Read(ctx context.Context, secrets Reader, namespace string, name func(field string) string, path, inline, file, env string, ref *v1alpha1.SecretKeyRef) (v string, ok bool, err error) {
	if name == nil {
		name = func(field string) string { return field }
	}
	switch {
	case inline != "":
		return inline, true, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", name(path+"File"), err)
		}
		v = strings.TrimSpace(string(b))
		if v == "" {
			return "", false, fmt.Errorf("%s: %s is empty", name(path+"File"), file)
		}
		return v, true, nil
	case env != "":
		v = strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", false, fmt.Errorf("%s: the environment variable %s is not set", name(path+"Env"), env)
		}
		return v, true, nil
	case ref != nil:
		if secrets == nil {
			return "", false, fmt.Errorf("%sSecretRef: a Kubernetes Secret cannot be read in local mode", path)
		}
		b, err := secrets.SecretValue(ctx, namespace, ref.Name, ref.Key)
		if err != nil {
			return "", false, fmt.Errorf("%sSecretRef: %w", path, err)
		}
		v = strings.TrimSpace(string(b))
		if v == "" {
			return "", false, fmt.Errorf("%sSecretRef: key %q of secret %s/%s is empty", path, ref.Key, namespace, ref.Name)
		}
		return v, true, nil
	}
	return "", false, nil
}

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

// Sources is where Read looks.
type Sources struct {
	// Secrets reads a Secret's key in Namespace; nil means local mode, which cannot.
	Secrets   Reader
	Namespace string
	// Getenv reads an environment variable; nil means os.Getenv.
	Getenv func(string) string
	// Name turns a field path into what the user wrote (a flag's name); nil keeps the path.
	Name func(field string) string
}

// Read returns the value of the setting at path from the one source that is set: inline,
// file (read now), env or ref, spaces trimmed. ok is false when none is set. Errors name the
// field, never the value.
func (s Sources) Read(ctx context.Context, path, inline, file, env string, ref *v1alpha1.SecretKeyRef) (v string, ok bool, err error) {
	name, getenv := s.Name, s.Getenv
	if name == nil {
		name = func(field string) string { return field }
	}
	if getenv == nil {
		getenv = os.Getenv
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
		v = strings.TrimSpace(getenv(env))
		if v == "" {
			return "", false, fmt.Errorf("%s: the environment variable %s is not set", name(path+"Env"), env)
		}
		return v, true, nil
	case ref != nil:
		if s.Secrets == nil {
			return "", false, fmt.Errorf("%sSecretRef: a Kubernetes Secret cannot be read in local mode", path)
		}
		b, err := s.Secrets.SecretValue(ctx, s.Namespace, ref.Name, ref.Key)
		if err != nil {
			return "", false, fmt.Errorf("%sSecretRef: %w", path, err)
		}
		v = strings.TrimSpace(string(b))
		if v == "" {
			return "", false, fmt.Errorf("%sSecretRef: key %q of secret %s/%s is empty", path, ref.Key, s.Namespace, ref.Name)
		}
		return v, true, nil
	}
	return "", false, nil
}

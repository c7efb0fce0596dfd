// Package v1alpha1 holds ramp's resource types: Rollout and AnalysisTemplate. The same types
// are read from YAML files in local mode and served as custom resources (group ramp.dev) in
// Kubernetes mode. Field comments say what a zero value means; defaults are applied in one
// place, internal/spec.
//
// +kubebuilder:object:generate=true
// +groupName=ramp.dev
package v1alpha1

// Group and Version name the API these types belong to.
const (
	Group      = "ramp.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version

	KindRollout          = "Rollout"
	KindAnalysisTemplate = "AnalysisTemplate"
)

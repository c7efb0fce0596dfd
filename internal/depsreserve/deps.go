// Package depsreserve pins the project's dependencies in go.mod while the packages that use
// them are written in parallel. It is removed once they all import what they need.
package depsreserve

import (
	_ "github.com/expr-lang/expr"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/common/expfmt"
	_ "github.com/prometheus/procfs"
	_ "github.com/spf13/cobra"
	_ "go.etcd.io/bbolt"
	_ "sigs.k8s.io/yaml"
)

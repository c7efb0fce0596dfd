# ramp: the two commands the README promises.
#   make demo  builds ramp and the sample chat-api and runs a real local rollout
#   make test  runs every test (it first builds the Kubernetes control plane for the Kubernetes
#              tests, once: about 8 minutes cold, a second run finds it cached)
GO ?= go
SHELL := /bin/bash

.PHONY: build demo test deps test-unit test-e2e test-k8s k8s-bins fuzz generate clean

CONTROLLER_GEN_VERSION := v0.23.0

build:
	$(GO) build -o bin/ramp ./cmd/ramp
	ln -sf ramp bin/kubectl-ramp  # `kubectl ramp ...` with bin/ on PATH: the verbs in Kubernetes mode
	$(GO) build -o bin/chat-api ./examples/chat-api

demo: build
	bin/ramp demo --chat-api bin/chat-api

test: k8s-bins deps test-unit test-e2e test-k8s fuzz

# What the tests need on the machine: Debian's prometheus (the prometheus analysis provider is
# tested against a real one). Quick when it is already installed.
deps:
	bash test/tools/prometheus.sh

test-unit: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /test/e2e)

test-e2e:
	$(GO) test -count=1 -timeout 20m ./test/e2e/

# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok at pinned
# versions into ${RAMP_CACHE:-~/.cache/ramp}/k8s-<versions>/bin, unless already there.
k8s-bins:
	@hack/k8s-control-plane.sh >/dev/null

# Kubernetes mode end to end, on a real control plane (test/k8senv).
test-k8s: k8s-bins
	$(GO) test -count=1 -timeout 20m ./test/e2e/k8s/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s -fuzzminimizetime 5s ./internal/spec
	$(GO) test -run '^$$' -fuzz FuzzParseHead -fuzztime 15s -fuzzminimizetime 5s ./internal/proxy/h1
	$(GO) test -run '^$$' -fuzz FuzzParseResponseHead -fuzztime 15s -fuzzminimizetime 5s ./internal/proxy/h1
# Its coverage varies from run to run (goroutines, timing): a time-bounded minimisation of every "new" input
# took most of the run, so it minimises with 10 runs at most.
	$(GO) test -run '^$$' -fuzz FuzzUpstreamBytes -fuzztime 20s -fuzzminimizetime 10x ./internal/proxy

# Regenerates api/v1alpha1/zz_generated.deepcopy.go, the CRDs in config/crd/bases and the
# controller's ClusterRole in config/rbac/role.yaml (from the +kubebuilder:rbac markers).
generate:
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) object paths=./api/...
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) crd paths=./api/... output:crd:dir=config/crd/bases
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) rbac:roleName=ramp-controller paths=./internal/kube/... output:rbac:dir=config/rbac

clean:
	rm -rf bin .e2e.log

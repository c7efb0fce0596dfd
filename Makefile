# ramp: the two commands the README promises.
#   make demo  builds ramp and the sample chat-api and runs a real local rollout
#   make test  runs every test
GO ?= go
SHELL := /bin/bash

.PHONY: build demo test test-unit test-e2e fuzz generate clean

CONTROLLER_GEN_VERSION := v0.23.0

build:
	$(GO) build -o bin/ramp ./cmd/ramp
	ln -sf ramp bin/kubectl-ramp  # `kubectl ramp ...` with bin/ on PATH: the verbs in Kubernetes mode
	$(GO) build -o bin/chat-api ./examples/chat-api

demo: build
	bin/ramp demo --chat-api bin/chat-api

test: test-unit test-e2e fuzz

test-unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /test/e2e)

test-e2e:
	$(GO) test -count=1 -timeout 20m ./test/e2e/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s ./internal/spec

# Regenerates api/v1alpha1/zz_generated.deepcopy.go, the CRDs in config/crd/bases and the
# controller's ClusterRole in config/rbac/role.yaml (from the +kubebuilder:rbac markers).
generate:
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) object paths=./api/...
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) crd paths=./api/... output:crd:dir=config/crd/bases
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) rbac:roleName=ramp-controller paths=./internal/kube/... output:rbac:dir=config/rbac

clean:
	rm -rf bin .e2e.log

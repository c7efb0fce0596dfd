# ramp: the two commands the README promises.
#   make demo  builds ramp and the sample chat-api and runs a real local rollout
#   make test  runs every test (it first builds the Kubernetes control plane for the Kubernetes
#              tests, once: 10 to 40 minutes cold, a second run finds it cached)
# and the release's:
#   make release  dist/: static binaries for linux and darwin, amd64 and arm64, their tar.gz
#                 archives, the krew manifest (dist/ramp.yaml) and SHA256SUMS
#   make image    bin/image: ramp's multi-arch container image as an OCI layout, without Docker
GO ?= go
SHELL := /bin/bash

.PHONY: build demo test deps helm test-unit test-e2e test-k8s test-release test-release-linux k8s-bins fuzz generate release image clean

CONTROLLER_GEN_VERSION := v0.23.0

# The release's version: the last v* tag (with the commits since and -dirty, as git describe
# says), else v0.0.0-dev. `make release VERSION=v1.2.3` sets it.
VERSION ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null || echo v0.0.0-dev)
# Where the archives are published: the krew manifest's download URLs are RELEASE_URL/VERSION/ARCHIVE.
RELEASE_URL ?= https://ramp.dev/releases/download
# The time stamped in the archives and the image: the last commit's, so a rebuild is the same.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
# hack/release reads it too (archives, krew manifest, the test).
export RAMP_RELEASE_PLATFORMS = $(RELEASE_PLATFORMS)
IMAGE_PLATFORMS := linux/amd64 linux/arm64
RELEASE_LDFLAGS := -s -w -X ramp.dev/ramp/internal/version.Version=$(VERSION)
# dist/ramp-OS-ARCH: static (no cgo), without the build machine's paths, stamped with VERSION.
define build_platforms
	@mkdir -p dist
	@for p in $(1); do \
		echo "go build $$p -> dist/ramp-$${p%/*}-$${p#*/}"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -ldflags "$(RELEASE_LDFLAGS)" -o dist/ramp-$${p%/*}-$${p#*/} ./cmd/ramp || exit 1; \
	done
endef

build:
	$(GO) build -o bin/ramp ./cmd/ramp
	ln -sf ramp bin/kubectl-ramp  # `kubectl ramp ...` with bin/ on PATH: the verbs in Kubernetes mode
	$(GO) build -o bin/chat-api ./examples/chat-api

demo: build
	bin/ramp demo --chat-api bin/chat-api

test: k8s-bins helm deps test-unit test-e2e test-k8s test-release-linux fuzz

# make test checks the release of the linux platforms only: each platform compiles every
# dependency once more (-trimpath), and darwin's binaries are the same code; `make test-release`
# checks all four.
test-release-linux:
	$(MAKE) test-release RELEASE_PLATFORMS="linux/amd64 linux/arm64"

# What the tests need on the machine: Debian's prometheus (the prometheus analysis provider is
# tested against a real one) and Debian's chromium (the dashboard's browser test drives it
# headless). Quick when they are already installed.
deps:
	bash test/tools/prometheus.sh
	bash test/tools/chromium.sh

test-unit: deps helm
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /test/e2e)

test-e2e: deps
	$(GO) test -count=1 -timeout 20m ./test/e2e/

# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok at pinned
# versions into ${RAMP_CACHE:-~/.cache/ramp}/k8s-<versions>/bin, unless already there.
k8s-bins:
	@hack/k8s-control-plane.sh >/dev/null

# Builds helm at a pinned version into ${RAMP_CACHE:-~/.cache/ramp}/helm-<version>, unless already
# there (about 3 minutes cold). The chart's tests (./charts) and the Kubernetes e2e run it.
helm:
	@hack/helm.sh >/dev/null

# Kubernetes mode end to end, on a real control plane (test/k8senv).
test-k8s: k8s-bins helm
	$(GO) test -count=1 -timeout 20m ./test/e2e/k8s/...

release:
	rm -rf dist
	$(call build_platforms,$(RELEASE_PLATFORMS))
	cd hack/release && $(GO) run . archives -version $(VERSION) -dist $(CURDIR)/dist -url $(RELEASE_URL) -krew $(CURDIR)/plugins/ramp.yaml -root $(CURDIR)

# The image: each linux binary alone on an empty base (no shell), run as uid 65532, written by
# hack/release with go-containerregistry (no Docker, no registry). Push it with e.g.
# skopeo copy --all oci:bin/image docker://REGISTRY/ramp:VERSION.
# IMAGE_FROM_DIST=1 takes the linux binaries `make release` just built instead of building them.
image:
	$(if $(IMAGE_FROM_DIST),,$(call build_platforms,$(IMAGE_PLATFORMS)))
	cd hack/release && $(GO) run . image -version $(VERSION) -dist $(CURDIR)/dist -out $(CURDIR)/bin/image -root $(CURDIR)

# Reads what release and image made: checksums, archives, krew manifest, the image's config
# and the binaries in it (hack/release/release_test.go).
test-release: release
	$(MAKE) image IMAGE_FROM_DIST=1 VERSION=$(VERSION)
	cd hack/release && $(GO) vet ./... && RAMP_DIST=$(CURDIR)/dist RAMP_IMAGE=$(CURDIR)/bin/image RAMP_VERSION=$(VERSION) $(GO) test -count=1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s -fuzzminimizetime 5s ./internal/spec
	$(GO) test -run '^$$' -fuzz FuzzParseHead -fuzztime 15s -fuzzminimizetime 5s ./internal/proxy/h1
	$(GO) test -run '^$$' -fuzz FuzzParseResponseHead -fuzztime 15s -fuzzminimizetime 5s ./internal/proxy/h1
# Its coverage varies from run to run (goroutines, timing): a time-bounded minimisation of every "new" input
# took most of the run, so it minimises with 10 runs at most.
	$(GO) test -run '^$$' -fuzz FuzzUpstreamBytes -fuzztime 20s -fuzzminimizetime 10x ./internal/proxy

# Regenerates api/v1alpha1/zz_generated.deepcopy.go, the CRDs in config/crd/bases and the
# controller's ClusterRole in config/rbac/role.yaml (from the +kubebuilder:rbac markers). The chart's
# ClusterRole (charts/ramp/templates/rbac.yaml) must then get the same rules: go test ./charts fails until it does.
generate:
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) object paths=./api/...
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) crd paths=./api/... output:crd:dir=config/crd/bases
	cp config/crd/bases/*.yaml charts/ramp/crds/  # the chart's CRDs (go test ./charts checks they are equal)
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) rbac:roleName=ramp-controller paths=./internal/kube/... output:rbac:dir=config/rbac

clean:
	rm -rf bin dist .e2e.log

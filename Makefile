# mailtrace Makefile. `make demo` and `make test` are the two commands a fresh
# machine needs (see README.md); everything slow is built once into bin/.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

BIN            ?= $(CURDIR)/bin
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CONTROLLER_GEN_VERSION ?= v0.20.1
CONTROLLER_GEN ?= $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GO             ?= go
export GOTOOLCHAIN ?= local

.PHONY: all
all: build

##@ Development

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.cg $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/.cg/controller-gen $(CONTROLLER_GEN)

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the API markers.
	$(CONTROLLER_GEN) crd:allowDangerousTypes=false rbac:roleName=mailtrace-manager paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	cp config/crd/bases/*.yaml internal/demo/crds/  # the binary embeds the CRDs for `mailtrace demo`
	rm -f charts/mailtrace/crds-src/*.yaml && cp config/crd/bases/*.yaml charts/mailtrace/crds-src/  # the Helm chart's CRDs (test/chart checks the copy)
	cp config/rbac/role.yaml charts/mailtrace/rbac-src/role.yaml  # the Helm chart's ClusterRole rules
	cp config/rbac/aggregate.yaml charts/mailtrace/rbac-src/aggregate.yaml  # the Helm chart's aggregated view/edit ClusterRoles
	cp config/admission/created-by.yaml charts/mailtrace/admission-src/created-by.yaml  # the Helm chart's admission policy (autosaved queries' creator)

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

.PHONY: lint
lint: ## gofmt, go mod tidy, golangci-lint (vet, import rules), duplication check (hack/lint.sh).
	@hack/lint.sh

##@ Build

LDFLAGS_VERSION = -X github.com/mailtrace/mailtrace/internal/cli.Version=$(VERSION)

.PHONY: build
build: ## Build bin/mailtrace (with the demo: -tags demo) and the kubectl plugin bin/kubectl-mailtrace, stamped with `git describe`.
	$(GO) build -tags demo -ldflags "$(LDFLAGS_VERSION)" -o $(BIN)/mailtrace ./cmd/mailtrace
	$(GO) build -ldflags "$(LDFLAGS_VERSION)" -o $(BIN)/kubectl-mailtrace ./cmd/kubectl-mailtrace

.PHONY: build-static
build-static: ## Build bin/mailtrace-static as the image does: CGO off, -trimpath, stripped.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS_VERSION)" -o $(BIN)/mailtrace-static ./cmd/mailtrace

IMG            ?= mailtrace:dev
CONTAINER_TOOL ?= docker

.PHONY: docker-build
docker-build: ## Build the container image $(IMG) from the Dockerfile (CONTAINER_TOOL=podman works too).
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: run
run: build ## Run the manager against the current kubeconfig with the embedded store.
	$(BIN)/mailtrace manager --store sqlite://$(BIN)/mailtrace.db

##@ Test

.PHONY: envtest
envtest: ## Build the envtest control plane into bin/k8s (once).
	@hack/envtest.sh >/dev/null

.PHONY: test-deps
test-deps: ## Build or install what the tests start: envtest control plane, PostgreSQL, MinIO, the mail lab's packages, Chromium (once).
	@hack/envtest.sh >/dev/null
	@hack/postgres.sh
	@hack/minio.sh >/dev/null
	@hack/maillab.sh
	@hack/chromium.sh

.PHONY: test
test: ## Run every test in phases (deps, lint, go test ./..., the flood), with a timing summary (hack/test.sh).
	@hack/test.sh

.PHONY: test-faults
test-faults: test-deps ## The 1 GB ingest flood and the hostile senders against the real binary, with their memory figures (the load and fault tests of test/faults run in `make test`).
	MAILTRACE_FLOOD_BYTES=1G $(GO) test -count=1 -timeout 30m -v -run '^TestFloodMemoryBounded$$' ./internal/ingest/server/
	MAILTRACE_HOSTILE_RSS=1 $(GO) test -count=1 -timeout 30m -v -run '^(TestHostileSendersRSS|TestHostileOTLPRSS)$$' ./internal/ingest/server/

# every decoder of untrusted input: the wire's framing, RFC 5424 frames,
# lines, fields a sender split, and HTTP bodies (JSON, NDJSON, raw lines)
FUZZTIME    ?= 2m
FUZZFLAGS   ?=
FUZZ_TARGETS = ./internal/ingest/syslog:FuzzDecoder ./internal/ingest/syslog:FuzzParseFrame \
	./internal/ingest/syslog:FuzzParseLine ./internal/ingest/syslog:FuzzParseFields \
	./internal/ingest/server:FuzzJSONArray ./internal/ingest/server:FuzzNDJSON ./internal/ingest/server:FuzzTextLines \
	./internal/ingest/server:FuzzOTLP

.PHONY: fuzz
fuzz: ## Fuzz every decoder of untrusted input for FUZZTIME each (default 2m), one after another; a crasher lands in the package's testdata/fuzz (not part of `make test`).
	@rc=0; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg || rc=1; \
	done; exit $$rc

.PHONY: test-maillab
test-maillab: ## The mail lab: real Postfix, rspamd, Dovecot, amavis and rsyslog on loopback into `mailtrace ingest`; every scenario (docs/maillab.md), and a MessageTrace on envtest. Installs their packages once (hack/maillab.sh, root).
	@hack/maillab.sh
	@hack/envtest.sh >/dev/null
	CI=true $(GO) test -count=1 -timeout 15m ./test/maillab/...

.PHONY: console-screenshots
console-screenshots: test-deps ## Run the console's browser tests and save a PNG of each page, English and Japanese, into docs/console/.
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" MAILTRACE_TEST_MINIO="$$(hack/minio.sh)" MAILTRACE_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console \
		CI=true $(GO) test -count=1 -timeout 10m ./test/console/

.PHONY: bench
bench: ## Run the benchmarks and print figures (see docs/benchmarks.md).
	$(GO) test -run '^$$' -bench . -benchtime 50x -timeout 60m ./internal/store/... ./internal/ingest/... ./internal/report/reportbench/ ./internal/console/
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 3 -timeout 60m ./test/ingestbench/  # the real binary on event-dense logs: events/s, peak RSS

.PHONY: docs
docs: ## Regenerate docs/reference.md from the CRDs, and README's reason and command tables (run after make manifests).
	$(GO) run ./docs/refgen

.PHONY: readme
readme: ## Run the demo and rewrite README's recorded output blocks from what it prints (docs/readmegen).
	@assets="$$(hack/envtest.sh)" && minio="$$(hack/minio.sh)" && $(GO) run ./docs/readmegen -assets "$$assets" -minio "$$minio"

##@ Demo

.PHONY: demo
demo: build ## The whole product on this machine: control plane, MinIO, manager and ingester, 90 days of mail logs, traces, a report.
	@# the scripts build kube-apiserver, etcd and MinIO once (progress on stderr) and print their paths
	@assets="$$(hack/envtest.sh)" && minio="$$(hack/minio.sh)" && \
		echo "$(BIN)/mailtrace demo --assets $$assets --minio $$minio" && \
		$(BIN)/mailtrace demo --assets "$$assets" --minio "$$minio"

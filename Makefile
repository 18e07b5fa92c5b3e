# capstan's build. `make test` is what CI runs (.ci/run) and what the README says.
GO ?= go
# The whole suite, envtest builds included, stays well under this.
TEST_TIMEOUT ?= 30m
BENCH ?= .
BENCHTIME ?= 1s

.PHONY: test lint vet fmt-check envtest-assets bench tools

## test: lint, make sure the control plane binaries exist, then every test with the race detector.
test: lint envtest-assets
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

## lint: gofmt and go vet.
lint: fmt-check vet

fmt-check:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi

vet:
	$(GO) vet ./...

## envtest-assets: build (first time only, ~5 min on 2 cores) or find etcd, kube-apiserver and
## kube-controller-manager, so that no test package waits on a build inside its own timeout.
envtest-assets:
	$(GO) run ./cmd/capstan envtest setup --controller-manager

## bench: every benchmark, side by side with its anchor; pipe to benchstat.
bench: envtest-assets
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem -timeout 60m ./...

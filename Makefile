# cardwarden — see README.md. `make dev` runs everything locally; `make test` is what CI runs.
GO        ?= go
PKG       := ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# The Temporal server packages make test binaries large and slow to link; two at a time keeps
# a 2-core machine responsive.
TESTFLAGS ?= -count=1 -p 2 -timeout 40m

.PHONY: dev test test-resilience bench bench-quick build lint fmt

dev: ## run the whole system: embedded Temporal + Web UI, worker, API, issuer simulator
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/cardwarden dev

test: ## unit, store (SQLite + Postgres), adapter and end-to-end tests
	$(GO) test $(TESTFLAGS) $(PKG)

test-resilience: ## crash, issuer-fault, Postgres-restart, Temporal-down and hostile-input tests
	$(GO) test -tags resilience -count=1 -timeout 30m ./test/resilience/

bench: ## every benchmark scenario against its floor; tables, JSON and SVG charts in bench-out/
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/cardwarden bench --scenario all --out bench-out

bench-quick: ## a small version of every scenario, under a minute each
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/cardwarden bench --scenario all --quick --out bench-out

build: ## build bin/cardwarden
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/cardwarden ./cmd/cardwarden

lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKG)

fmt:
	gofmt -w $$(git ls-files '*.go')

# ebpfc — see README.md. `make test` is the one command that proves the tree works.

GO        ?= go
GOFLAGS   ?=
BIN       := bin
EXAMPLE   ?= examples/basic
DEMO_OUT  ?= out/demo
# make test must stay well under 30 minutes on 2 cores.
TEST_TIMEOUT ?= 25m

CUE_VERSION := v0.17.1

export CGO_ENABLED ?= 0
# Tools the tests use that come from the Go module proxy live in bin/.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: all build test check golden demo bench fuzz deps clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ebpfc ./cmd/ebpfc
	$(GO) build -o $(BIN)/ebpfd ./cmd/ebpfd

# deps installs the OS tools the tests use (bpftool, iproute2) when they are
# missing and we are root; as another user it only says what is missing. The
# cue command (to test `cue vet` against the schema) goes into bin/.
deps:
	@command -v cue >/dev/null 2>&1 || GOBIN=$(CURDIR)/$(BIN) $(GO) install cuelang.org/go/cmd/cue@$(CUE_VERSION)
	@missing=""; \
	command -v bpftool >/dev/null 2>&1 || missing="$$missing bpftool"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing:$$missing (run make test as root to install them; kernel tests will skip)"; \
		fi; \
	fi

test: deps
	$(GO) test -timeout $(TEST_TIMEOUT) $(GOFLAGS) ./...

# check fails when formatting, vet or go.mod/go.sum are not clean.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy
	@git diff --exit-code -- go.mod go.sum || (echo "go.mod/go.sum not tidy"; exit 1)

# golden rewrites every golden file from the code; review the diff.
golden:
	EBPFC_UPDATE=1 $(GO) test ./... -run 'Golden|Pass' -count=1

demo: build
	@rm -rf $(DEMO_OUT)
	$(BIN)/ebpfc compile $(EXAMPLE) -o $(DEMO_OUT)
	@if [ "$$(id -u)" = 0 ]; then \
		$(BIN)/ebpfc verify --kernel $(DEMO_OUT); \
	else \
		echo "(not root: skipping the kernel verifier; run 'sudo make demo' to load every program)"; \
	fi
	@echo "artifacts in $(DEMO_OUT)/:"; ls -1 $(DEMO_OUT)/*/

# BENCH and BENCHPKG narrow the run, e.g. the policy compiler and datapath:
#   make bench BENCH='PolicyPacket|CompileNode|AddEndpoint|LoadNode|Incremental' BENCHPKG='./compiler/ ./compiler/lower/'
BENCH    ?= .
BENCHPKG ?= ./...
# The 5k x 1k benchmarks compile 30,000 programs in one process; a soft
# memory limit keeps the garbage collector ahead of a 24 GB machine.
BENCH_GOMEMLIMIT ?= 9GiB
bench:
# -p 1: packages run one after another, so compile benchmarks do not take
# CPU from the in-kernel packet measurements.
	GOMEMLIMIT=$(BENCH_GOMEMLIMIT) $(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -benchmem -timeout 60m $(BENCHPKG)

FUZZTIME ?= 60s
fuzz:
	$(GO) test ./ir -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./compiler/load -run '^$$' -fuzz 'FuzzLoad$$' -fuzztime $(FUZZTIME)
	$(GO) test ./compiler/load -run '^$$' -fuzz FuzzLoadKubernetes -fuzztime $(FUZZTIME)
	$(GO) test ./compiler/reference -run '^$$' -fuzz FuzzPacket -fuzztime $(FUZZTIME)
	$(GO) test ./compiler/explain -run '^$$' -fuzz FuzzParseFlow -fuzztime $(FUZZTIME)
	EBPFC_DIFF_SEEDS=$${EBPFC_DIFF_SEEDS:-41-1040} $(GO) test ./compiler -run '^TestDifferential$$' -count=1 -timeout 60m

clean:
	rm -rf $(BIN) out

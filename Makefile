# Developer and CI entry points. `make` alone lists the targets.

PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
# Interpreter used to create .venv (Python 3.11 or newer).
PYTHON3 ?= python3
BASE_IMAGE ?= localhost/paude-base:bookworm
PROXY_BASE_IMAGE ?= localhost/paude-proxy-base:bookworm
# Extra arguments, e.g. `make test PYTEST_ARGS="-k plan -x"`.
PYTEST_ARGS ?=
# Extra arguments of the engine build: `--kubernetes` adds the pulumi-kubernetes plugin
# (OpenShift / Kubernetes sessions, and the cluster tests: `make setup-tests` adds it).
ENGINE_ARGS ?=
# Go's official archive installs into /usr/local/go, which a fresh login shell may not have on
# PATH; the engine and tool builds look there too.
export PATH := $(PATH):/usr/local/go/bin

.DEFAULT_GOAL := help
.PHONY: help setup setup-tests check venv lint type test test-unit test-integration test-faults bench bench-list \
	bench-egress engine base-image proxy-base setup-podman schema test-cluster machine-config test-lifecycle \
	actionlint fuzz

help: ## List the targets
	@echo "Targets (PYTHON=$(PYTHON)):"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | \
		awk 'BEGIN { FS = ":.*## " } { printf "  %-17s %s\n", $$1, $$2 }'

# The engine build (CPU), the settings and base image (network, disk) and .venv go side
# by side; each caches what it builds, so a second run takes seconds.
setup: setup-podman ## Set up this machine for paude: podman, engine, machine settings (and base image), .venv
	@$(MAKE) --no-print-directory -j3 engine machine-config venv
	@.venv/bin/paude doctor

setup-tests: setup ## What the tests need beyond `make setup`: kubernetes plugin, loopback cluster tools, actionlint
	@$(MAKE) --no-print-directory engine ENGINE_ARGS=--kubernetes
	@$(MAKE) --no-print-directory test-cluster actionlint

check: lint type test ## Lint, type-check and run every test

venv: .venv/.installed ## Create .venv and install paude with its development tools

# Editable: only a change of pyproject.toml (dependencies, entry points) installs again.
.venv/.installed: pyproject.toml
	test -x .venv/bin/python || $(PYTHON3) -m venv .venv
	.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

lint: ## Run ruff
	$(PYTHON) -m ruff check paude stacks policies tests bench

type: ## Run mypy (strict, configured in pyproject.toml), also on bench/
	$(PYTHON) -m mypy
	cd bench && MYPYPATH=.:.. $(if $(findstring /,$(PYTHON)),$(abspath $(PYTHON)),$(PYTHON)) -m mypy --strict run.py git_bench.py list_bench.py egress_bench.py

test: ## Run the whole test suite
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-unit: ## Run the unit tests
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: ## Run the integration tests (podman, Pulumi engine)
	$(PYTHON) -m pytest tests/integration $(PYTEST_ARGS)

# Kill points of `make test-faults` (the suite's own run uses 20) and their seed.
FAULT_POINTS ?= 60
FAULT_SEED ?= 11

test-faults: ## SIGKILL paude at FAULT_POINTS seeded points of create/apply/destroy/delete
	PAUDE_FAULT_POINTS=$(FAULT_POINTS) PAUDE_FAULT_SEED=$(FAULT_SEED) \
		$(PYTHON) -m pytest tests/integration/test_fault_injection.py -s $(PYTEST_ARGS)

test-lifecycle: ## Randomized lifecycle, long run: 150 operations (PAUDE_LIFECYCLE_OPS, PAUDE_LIFECYCLE_SEED)
	PAUDE_LIFECYCLE_OPS=$${PAUDE_LIFECYCLE_OPS:-150} $(PYTHON) -m pytest \
		tests/integration/test_lifecycle_random.py -k test_random_lifecycle -s $(PYTEST_ARGS)

# Inputs of `make fuzz` across all targets (`make test` runs a derandomized 1000) and the
# seed of its random run (a fresh one each time unless given; printed to rerun a failure).
FUZZ_EXAMPLES ?= 10000
FUZZ_SEED ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
FUZZ_SEED := $(FUZZ_SEED)

fuzz: ## Fuzz paude's inputs: FUZZ_EXAMPLES (10000) generated files and command lines, seed FUZZ_SEED
	@echo "fuzz: $(FUZZ_EXAMPLES) inputs, PAUDE_FUZZ_SEED=$(FUZZ_SEED) (rerun: make fuzz FUZZ_SEED=$(FUZZ_SEED))"
	PAUDE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PAUDE_FUZZ_SEED=$(FUZZ_SEED) \
		$(PYTHON) -m pytest tests/fuzz -W ignore::hypothesis.errors.HypothesisWarning $(PYTEST_ARGS)

# The benchmarks' sessions get the proxy base `make setup` builds (the rebuilt squid);
# PAUDE_TEST_PROXY_BASE_IMAGE=$(BASE_IMAGE) measures Debian's squid binary instead.
bench: ## Run the benchmarks
	PAUDE_TEST_PROXY_BASE_IMAGE="$${PAUDE_TEST_PROXY_BASE_IMAGE:-$(PROXY_BASE_IMAGE)}" $(PYTHON) bench/run.py

bench-list: ## Time `paude list` with 50 running sessions against its one podman call
	$(PYTHON) bench/list_bench.py

bench-egress: ## Benchmark TLS inspection against a tunnel and a direct connection
	PAUDE_TEST_PROXY_BASE_IMAGE="$${PAUDE_TEST_PROXY_BASE_IMAGE:-$(PROXY_BASE_IMAGE)}" $(PYTHON) bench/egress_bench.py

engine: ## Build the Pulumi engine from Go modules into $PAUDE_HOME/bin (cached by version)
	bash scripts/build-engine.sh $(ENGINE_ARGS)

base-image: ## Build the local test base image (BASE_IMAGE=...)
	bash scripts/build-base-image.sh $(BASE_IMAGE)

proxy-base: ## Build the proxy's base image: BASE_IMAGE with Debian's squid rebuilt for bulk inspected downloads
	bash scripts/build-proxy-base.sh --refresh $(BASE_IMAGE) $(PROXY_BASE_IMAGE)

machine-config: ## Write $PAUDE_HOME/config.yaml for what this machine reaches (unless it exists); build the base images it names
	bash scripts/machine-config.sh $(BASE_IMAGE) $(PROXY_BASE_IMAGE)

setup-podman: ## Install and configure podman and test tools on this machine (root)
	bash scripts/setup-podman.sh

actionlint: ## Build actionlint (lints docs/github's workflow) from Go modules (cached)
	bash scripts/build-actionlint.sh

test-cluster: ## Build the loopback API server, kubectl, node and registry the cluster tests use (cached)
	bash scripts/build-kube.sh
	bash scripts/build-node.sh
	bash scripts/build-registry.sh

schema: ## Regenerate docs/paude.schema.json
	$(PYTHON) -m paude.schema docs/paude.schema.json

# oncall-operator: the two commands are `make run` and `make test` (see README.md).
# Everything else here is a step they depend on; each is safe to run again.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .cluster/bin

.PHONY: run test venv tools browser cluster-up cluster-down cluster-status crds crds-check lint unit e2e clean

run: venv tools ## the operator, against the configured cluster or a local control plane it starts
	hack/run.sh

test: venv tools browser lint ## the whole suite: lint, types, stale CRDs, unit and e2e on a real control plane
	hack/pytest.sh tests

unit: venv ## every test that needs no control plane (tests/unit, tests/integration, ...): all but tests/e2e
	hack/pytest.sh tests --ignore=tests/e2e

e2e: venv tools browser ## the tests on a real control plane; with `unit`, everything `test` runs
	hack/pytest.sh tests/e2e

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

tools: ## kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kubelet, kube-proxy, helm, alertmanager, amtool (built once per machine)
	hack/build-tools.sh

browser: ## headless Chromium for the board's browser tests (the Debian package, installed when root)
	hack/ensure-chromium.sh

cluster-up: venv tools ## start the local control plane (idempotent); writes .cluster/kubeconfig; NODE=1: and a real node (root)
	$(BIN)/oncall-operator dev-cluster up $(if $(filter 1 yes true,$(NODE)),--node)

cluster-down: venv
	$(BIN)/oncall-operator dev-cluster down

cluster-status: venv
	$(BIN)/oncall-operator dev-cluster status

crds: venv ## regenerate crds/ from the pydantic models
	$(BIN)/oncall-operator crds

crds-check: venv
	$(BIN)/oncall-operator crds --check

lint: venv crds-check
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean: cluster-down
	rm -rf .cluster $(VENV)

.PHONY: bench-oom
bench-oom: venv tools ## OOM kill -> patched workload latency, operator vs a bare watch-and-patch client (JSON in bench/results/)
	$(BIN)/python bench/oom_latency.py $(BENCH_ARGS)

.PHONY: bench
BENCH_SIZES ?= 1000,5000,10000
bench: venv tools $(VENV)/.bench-installed ## cluster-scale benchmarks on a kwok-simulated cluster (bench/results/); BENCH_SIZES=1000,5000 BENCH_ARGS=--profile
	hack/build-tools.sh kwok
	$(BIN)/python bench/cluster_scale.py --sizes $(BENCH_SIZES) $(BENCH_ARGS)

.PHONY: bench-storm
BENCH_STORM_SIZES ?= 1000,5000,10000
bench-storm: venv tools $(VENV)/.bench-installed ## open Incidents through the intake: RSS, due-page lateness, API per tick, takeover (bench/results/); BENCH_STORM_ARGS="--before REF"
	hack/build-tools.sh kwok
	$(BIN)/python bench/storm.py --sizes $(BENCH_STORM_SIZES) $(BENCH_STORM_ARGS)

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

# Every target works from a fresh clone: the virtual environments are created on demand by
# tools/venv.py (uv when it can be had, else pip; one progress line per step), from the lock
# files in requirements/ so that both install the same versions. `make lock` rewrites them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/dev.lock
SETUP := $(PYTHON) tools/venv.py
# Checks that cannot run on this machine (a missing system tool, no package index) append
# one line here instead of failing; `make test` repeats them all at its end.
SKIPPED := $(CURDIR)/$(VENV)/.skipped-checks
export RESIDENCY_SKIPPED_CHECKS := $(SKIPPED)
# Test processes for `make pytest` (pytest-xdist; each has its own sandbox server and state).
# Three on two cores: the end-to-end tests mostly wait on simulated tasks and on Airflow's
# subprocesses, so two processes left the cores idle a third of the time; four start four
# Airflow processes at once and contend. Measured on this project's 2-core machine, the
# whole suite: -n 2 6 min 36 s, -n 3 5 min 9 s, -n 4 6 min 42 s.
PYTEST_WORKERS ?= 3
# `make UV=pip ...` builds every environment with pip alone; `UV=/path/to/uv` picks a uv.
ifdef UV
export UV
endif

# Extra checks contributed by mk/*.mk (each appends its target names to TEST_EXTRA). Tests
# that need an environment of their own add it to PYTEST_PREREQS and pass its interpreter in
# PYTEST_ENV, so that they run in `make pytest`'s pool, beside the rest, instead of after it.
TEST_EXTRA :=
BENCH_TARGETS :=
PYTEST_PREREQS :=
PYTEST_ENV :=
-include mk/*.mk

AWSCLI_VENV := .venv-awscli
BENCH_TARGETS += bench-dispatch bench-scale

.PHONY: setup test test-begin lint format typecheck pytest demo docs lock ci-tools bench \
	bench-dispatch bench-scale soak
.DEFAULT_GOAL := test

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) tools/venv.py
	@$(SETUP) $(VENV) --python $(PYTHON) --lock $(LOCK) --editable . --stamp $@

# System packages some checks need (vagrant and ruby for `make etl-lint`). Never installed
# behind your back: only this target installs them, and .ci/run calls it before `make test`.
ci-tools:
	@bash tools/ci-tools.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/

# The AWS CLI is the independent client the end-to-end tests check the sandbox with.
# --durations: the slowest tests are named in every run, so a slow one is noticed.
pytest: $(STAMP) $(AWSCLI_VENV)/.installed $(PYTEST_PREREQS)
	$(PYTEST_ENV) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=10

test-begin:
	@rm -f $(SKIPPED)

test: test-begin lint typecheck pytest $(TEST_EXTRA)
	@if [ -s $(SKIPPED) ]; then \
	  echo ""; \
	  echo "######## make test passed, but these checks were SKIPPED on this machine: ########"; \
	  sed 's/^/  SKIPPED: /' $(SKIPPED); \
	  echo "######## (make ci-tools installs the system packages they need) ########"; \
	else echo "make test: every check ran"; fi

# The whole story on a local sandbox: no AWS account, no network.
demo: $(STAMP)
	$(BIN)/residency demo

# docs/cli.md is generated from `residency ... --help`; a test fails when it is stale.
docs: $(STAMP)
	$(BIN)/python tools/gen_cli_docs.py

# Re-resolve the lock files after a dependency changed (needs uv and the package index): the
# versions already locked are kept where they still fit. `make lock LOCK_FLAGS=--upgrade`
# moves everything to the newest versions that the pins in pyproject.toml,
# docker/requirements.txt and examples/airflow/requirements.txt allow.
LOCK_FLAGS ?=
LOCK_COMPILE = "$$($(SETUP) --which-uv)" pip compile --quiet --universal --python-version 3.11 \
	--custom-compile-command "make lock" $(LOCK_FLAGS)
lock:
	$(LOCK_COMPILE) --generate-hashes --extra dev pyproject.toml docker/requirements.txt -o $(LOCK)
	$(LOCK_COMPILE) --generate-hashes requirements/awscli.in -o requirements/awscli.lock
	$(LOCK_COMPILE) examples/airflow/requirements.txt -o requirements/airflow.lock

# Every benchmark, each against its reference measured in the same run; rewrites BENCHMARKS.md
# (raw numbers in .bench/results.json). The bench-* targets in BENCH_TARGETS run one alone.
bench: $(STAMP) $(AWSCLI_VENV)/.installed $(ETL_VENV)/.installed $(ETL_BENCH_VENV)/.installed
	$(BIN)/python bench/run_all.py --etl-python $(ETL_VENV)/bin/python \
	  --pandas-python $(ETL_BENCH_VENV)/bin/python

# 500 consecutive runs under mild faults (about 15 minutes): misplaced, lost, memory, open
# files. Writes .bench/soak.md, which `make bench` copies into BENCHMARKS.md.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --seed 20261123 --output .bench/soak.md

# The AWS CLI (an independent client) is the reference the dispatch benchmark compares with.
$(AWSCLI_VENV)/.installed: requirements/awscli.lock tools/venv.py
	@$(SETUP) $(AWSCLI_VENV) --python $(PYTHON) --lock requirements/awscli.lock --stamp $@

bench-dispatch: $(STAMP) $(AWSCLI_VENV)/.installed
	$(BIN)/python bench/dispatch_bench.py --runs 7

# Pre-flight at 100, 1,000 and 5,000 hosts, beside the full-fleet approach it replaced.
bench-scale: $(STAMP)
	$(BIN)/python bench/scale_bench.py --runs 3

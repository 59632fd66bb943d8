# Apache Airflow checks (included by the Makefile).
#
#   test-airflow   ResidencyRunOperator, the example DAGs (examples/airflow/) and the stock
#                  operator with ecs_run_task_kwargs under a real Airflow 3 with the Amazon
#                  provider: parsed with DagBag, then run with `dag.test()` against the
#                  in-process sandbox (tests/airflow/, docs/airflow.md); part of `make
#                  pytest` (so of `make test`), and a target of its own. Airflow lives in its
#                  own environment, .venv-airflow/, rebuilt only when
#                  examples/airflow/requirements.txt or its lock changes; the lock
#                  (requirements/airflow.lock, a constraints file) pins the whole tree. When
#                  that environment is missing and the package index cannot be reached, it
#                  prints SKIPPED, records the skip for `make test`'s summary, and succeeds.

AIRFLOW_VENV := .venv-airflow
AIRFLOW_REQUIREMENTS := examples/airflow/requirements.txt
AIRFLOW_LOCK := requirements/airflow.lock
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

.PHONY: test-airflow airflow-venv airflow-if-possible

# `make test` runs tests/airflow inside `make pytest` (in parallel with the rest): the
# environment is built first when it can be, and its interpreter passed on when it exists.
PYTEST_PREREQS += airflow-if-possible
PYTEST_ENV += RESIDENCY_AIRFLOW_PYTHON="$$(test -f $(AIRFLOW_STAMP) \
	&& echo $(CURDIR)/$(AIRFLOW_VENV)/bin/python)"

$(AIRFLOW_STAMP): $(AIRFLOW_REQUIREMENTS) $(AIRFLOW_LOCK) tools/venv.py
	@$(SETUP) $(AIRFLOW_VENV) --python $(PYTHON) --fresh --requirement $(AIRFLOW_REQUIREMENTS) \
	  --constraint $(AIRFLOW_LOCK) --check --stamp $@

airflow-venv: $(AIRFLOW_STAMP)

# Up to date: nothing to do. Missing or stale: build it if the index answers, else record
# the skip (the Airflow test then skips itself) and succeed.
airflow-if-possible:
	@if [ -f $(AIRFLOW_STAMP) ] && [ ! $(AIRFLOW_REQUIREMENTS) -nt $(AIRFLOW_STAMP) ] \
	  && [ ! $(AIRFLOW_LOCK) -nt $(AIRFLOW_STAMP) ]; then :; \
	elif $(PYTHON) -m pip index versions apache-airflow-providers-amazon >/dev/null 2>&1; \
	then $(MAKE) --no-print-directory airflow-venv; \
	else echo "SKIPPED: test-airflow: cannot reach the package index to install Apache Airflow"; \
	  mkdir -p "$$(dirname "$(SKIPPED)")"; \
	  echo "test-airflow (Apache Airflow could not be installed: no package index)" \
	    >> "$(SKIPPED)"; fi

# The Airflow tests alone.
test-airflow: $(STAMP) airflow-if-possible
	$(PYTEST_ENV) $(BIN)/python -m pytest tests/airflow

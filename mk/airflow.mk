# Apache Airflow checks (included by the Makefile).
#
#   test-airflow   the example DAGs (examples/airflow/) under a real Airflow 3 with the Amazon
#                  provider: parsed with DagBag, then run with `dag.test()` against the
#                  in-process sandbox (tests/airflow/test_airflow_e2e.py). Airflow lives in its
#                  own environment, .venv-airflow/, rebuilt only when
#                  examples/airflow/requirements.txt or its lock changes; the lock
#                  (requirements/airflow.lock, a constraints file) pins the whole tree. When
#                  that environment is missing and the package index cannot be reached, it
#                  prints SKIPPED, records the skip for `make test`'s summary, and succeeds.

AIRFLOW_VENV := .venv-airflow
AIRFLOW_REQUIREMENTS := examples/airflow/requirements.txt
AIRFLOW_LOCK := requirements/airflow.lock
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

.PHONY: test-airflow airflow-venv

TEST_EXTRA += test-airflow

$(AIRFLOW_STAMP): $(AIRFLOW_REQUIREMENTS) $(AIRFLOW_LOCK) tools/venv.py
	@$(SETUP) $(AIRFLOW_VENV) --python $(PYTHON) --fresh --requirement $(AIRFLOW_REQUIREMENTS) \
	  --constraint $(AIRFLOW_LOCK) --check --stamp $@

airflow-venv: $(AIRFLOW_STAMP)

# Up to date: run. Missing or stale: build it if the index answers, else skip (exit 0).
test-airflow: $(STAMP)
	@if [ -f $(AIRFLOW_STAMP) ] && [ ! $(AIRFLOW_REQUIREMENTS) -nt $(AIRFLOW_STAMP) ] \
	  && [ ! $(AIRFLOW_LOCK) -nt $(AIRFLOW_STAMP) ]; then :; \
	elif $(PYTHON) -m pip index versions apache-airflow-providers-amazon >/dev/null 2>&1; \
	then $(MAKE) --no-print-directory airflow-venv; \
	else echo "SKIPPED: test-airflow: cannot reach the package index to install Apache Airflow"; \
	  echo "test-airflow (Apache Airflow could not be installed: no package index)" \
	    >> "$(SKIPPED)"; \
	  exit 0; fi; \
	RESIDENCY_AIRFLOW_PYTHON="$(CURDIR)/$(AIRFLOW_VENV)/bin/python" \
	  $(BIN)/python -m pytest tests/airflow

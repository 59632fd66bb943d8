"""Names residency writes into AWS and reads back: one home, so dispatch, audit, IAM policy,
Airflow and the map's validation can never disagree on a spelling."""

from __future__ import annotations

# RunTask's `startedBy` (at most 36 characters: ECS API reference, RunTask).
STARTED_BY = "residency"

# Tags residency puts on every task it starts (RunTask `tags`).
WORKLOAD_TAG = "residency:workload"
LOCATION_TAG = "residency:location"
RUN_ID_TAG = "residency:run-id"
# Added after placement was verified: audit's "location then", whatever the host says later.
HOST_LOCATION_TAG = "residency:host-location"
RESIDENCY_TAGS = (WORKLOAD_TAG, LOCATION_TAG, RUN_ID_TAG, HOST_LOCATION_TAG)
# Prefixes a map's own `tags:` may not use: `aws:` is reserved by AWS, `residency:` by us.
RESERVED_TAG_PREFIXES = ("aws:", "residency:")

# How the stoppedReason of a task residency stopped for its placement begins.
VIOLATION_REASON_PREFIX = "residency: host "

# Tags the Airflow operator adds (residency_cli.airflow_dispatch): which task instance of
# which DAG run started the task, so that a retry finds it. The values are Airflow's ids made
# safe for ECS tags; AIRFLOW_KEY_TAG is the exact identity (a digest of all four).
AIRFLOW_DAG_TAG = "residency:airflow-dag"
AIRFLOW_RUN_TAG = "residency:airflow-run"
AIRFLOW_TASK_TAG = "residency:airflow-task"
AIRFLOW_MAP_INDEX_TAG = "residency:airflow-map-index"
AIRFLOW_KEY_TAG = "residency:airflow-key"
AIRFLOW_TAGS = (
    AIRFLOW_DAG_TAG,
    AIRFLOW_RUN_TAG,
    AIRFLOW_TASK_TAG,
    AIRFLOW_MAP_INDEX_TAG,
    AIRFLOW_KEY_TAG,
)

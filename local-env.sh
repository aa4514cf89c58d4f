# Use the project's virtual environment and its local Airflow home in this shell:
#     source local-env.sh
# Then `airflow dags test <dag_id>`, `make airflow` (the UI) and `batch-fanout ...` work against the
# metadata database and the local AWS Batch endpoint that `make demo` set up.
_batch_fanout_home="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export BATCH_FANOUT_HOME="$_batch_fanout_home"
# Where the local endpoint finds the job images (its lookup order: docs/local-endpoint.md).
export BATCH_FANOUT_CONTAINERS_DIR="$_batch_fanout_home/include/containers"
export AIRFLOW_HOME="$_batch_fanout_home/.airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$_batch_fanout_home/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Everything Airflow serves here listens on loopback only: the UI and API (whose execution API runs the
# tasks) and the scheduler's health check. `make airflow` runs the components without the log servers,
# which Airflow binds to every interface; the UI reads the task logs from .airflow/logs instead.
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST=127.0.0.1
# shellcheck disable=SC1091
. "$_batch_fanout_home/.venv/bin/activate"
unset _batch_fanout_home

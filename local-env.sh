# Use the project's virtual environment and its local Airflow home in this shell:
#     source local-env.sh
# Then `airflow dags test <dag_id>`, `airflow standalone` and `batch-fanout ...` work against the
# metadata database and the local AWS Batch endpoint that `make demo` set up.
_batch_fanout_home="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export BATCH_FANOUT_HOME="$_batch_fanout_home"
export AIRFLOW_HOME="$_batch_fanout_home/.airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$_batch_fanout_home/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# shellcheck disable=SC1091
. "$_batch_fanout_home/.venv/bin/activate"
unset _batch_fanout_home

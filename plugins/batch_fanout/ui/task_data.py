"""What the views read from Airflow's metadata database: a task's Batch job, its connection and a
run's results store.

The job id is the one the task stored for its links (XCom ``batch_fanout_job``, written by the
operator and the sensor as soon as they know the job); the connection and the results store are the
task's own rendered ``aws_conn_id`` and ``results_uri`` (falling back to the DAG's serialized task),
so the views read AWS exactly as the task did, on AWS and on the local endpoint alike.
"""

from __future__ import annotations

from typing import Any

#: XCom keys the operator and sensor write (see :mod:`batch_fanout.links.batch`).
JOB_LINK_KEY = "batch_fanout_job"
JOB_ID_KEY = "batch_job_id"


class NotFound(LookupError):
    """What the view was asked for does not exist (HTTP 404); the message names it."""


def _xcom(dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=run_id, dag_ids=dag_id, task_ids=task_id, key=key, map_indexes=map_index
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def task_job_id(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The Batch job of the task instance's latest try, or ``None`` if it has none (yet)."""
    stored = _xcom(dag_id, run_id, task_id, map_index, JOB_LINK_KEY)
    if isinstance(stored, dict) and isinstance(stored.get("job_id"), str) and stored["job_id"]:
        return str(stored["job_id"])
    stored = _xcom(dag_id, run_id, task_id, map_index, JOB_ID_KEY)
    return stored if isinstance(stored, str) and stored else None


def check_task_instance(dag_id: str, run_id: str, task_id: str, map_index: int) -> None:
    """:raises NotFound: naming the task instance when the metadata database has no such one."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalar(
            select(TaskInstance.task_id).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        )
    if found is None:
        suffix = f"[{map_index}]" if map_index >= 0 else ""
        raise NotFound(f"no task instance {task_id}{suffix} in run {run_id!r} of DAG {dag_id!r}")


def _rendered_fields(dag_id: str, run_id: str, task_id: str | None, map_index: int) -> list[dict[str, Any]]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(Rendered.task_id, Rendered.rendered_fields).where(
            Rendered.dag_id == dag_id, Rendered.run_id == run_id
        )
        if task_id is not None:
            query = query.where(Rendered.task_id == task_id, Rendered.map_index == map_index)
        return [dict(fields or {}) for _, fields in session.execute(query.order_by(Rendered.task_id))]


def _serialized_task(dag_id: str, task_id: str) -> Any:
    from airflow.models.serialized_dag import SerializedDagModel

    serialized = SerializedDagModel.get(dag_id)
    if serialized is None:
        return None
    dag = serialized.dag
    return dag.task_dict.get(task_id)


def task_connection_id(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The task's ``aws_conn_id`` as it ran (rendered), else as the DAG declares it."""
    for fields in _rendered_fields(dag_id, run_id, task_id, map_index):
        value = fields.get("aws_conn_id")
        if isinstance(value, str) and value:
            return value
    task = _serialized_task(dag_id, task_id)
    value = getattr(task, "aws_conn_id", None) if task is not None else None
    return value if isinstance(value, str) and value else None


def run_results_uri(dag_id: str, run_id: str) -> str | None:
    """The results store of a DAG run: the rendered ``results_uri`` of one of its tasks."""
    for fields in _rendered_fields(dag_id, run_id, None, -1):
        value = fields.get("results_uri")
        if isinstance(value, str) and "://" in value and "{{" not in value:
            return value
    return None


def connection_targets_endpoint(conn_id: str | None) -> bool:
    """Whether the AWS connection names an ``endpoint_url`` for Batch (a local or private endpoint,
    where no AWS console knows the job)."""
    if not conn_id:
        return False
    try:
        from airflow.models.connection import Connection

        extra = Connection.get_connection_from_secrets(conn_id).extra_dejson
    except Exception:
        return False
    if extra.get("endpoint_url"):
        return True
    service = (extra.get("service_config") or {}).get("batch") or {}
    return bool(service.get("endpoint_url"))

"""The plugin's FastAPI app, served by Airflow's API server under ``/batch-fanout``.

Every endpoint is behind Airflow's own authentication and authorization: the user comes from
Airflow's JWT (the UI's cookie or a bearer token) and the auth manager is asked whether that user may
read the DAG (task instances for the array view, task logs for a child's log, runs for the report),
so a user who may not read a DAG gets 403 and sees nothing of its runs.

Pages are plain server-rendered HTML with one small script (``static/array.js``) and no build step.
"""

from __future__ import annotations

import html
import json
import logging
from collections import Counter
from importlib import resources
from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from batch_fanout.ui import array as array_data
from batch_fanout.ui import task_data
from batch_fanout.ui.report import REPORT_PAGE, BadPath, RunFolder

log = logging.getLogger(__name__)

# What a served report may do: show its own styles and inlined images, link to its files; never run
# a script (a job wrote it, and it is served from Airflow's origin).
REPORT_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)

#: The children of finished jobs, kept between refreshes (they never change again).
FINISHED_CHILDREN = array_data.FinishedChildren()

read_task_instances = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))
read_task_logs = Depends(requires_access_dag("GET", DagAccessEntity.TASK_LOGS))
read_runs = Depends(requires_access_dag("GET", DagAccessEntity.RUN))


def _static(name: str) -> str:
    return resources.files("batch_fanout.ui").joinpath("static", name).read_text(encoding="utf-8")


def _clients(conn_id: str | None) -> tuple[Any, Any, Counter[str]]:
    """Counted Batch and CloudWatch Logs clients of the task's connection."""
    from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook

    from batch_fanout.hooks.batch_client import BatchFanoutClientHook

    hook = BatchFanoutClientHook(aws_conn_id=conn_id)
    logs_hook = AwsLogsHook(aws_conn_id=conn_id, region_name=hook.region_name)
    calls: Counter[str] = Counter()
    return (
        array_data.CountingClient(hook.batch, calls, hook.call_with_backoff),
        array_data.CountingClient(logs_hook.conn, calls, hook.call_with_backoff),
        calls,
    )


def _map_index(value: str) -> int:
    """The ``map_index`` query value: a number, or ``-1`` for a task that is not mapped (Airflow's UI
    leaves ``{MAP_INDEX}`` in the tab's URL unfilled then).

    :raises HTTPException: 400 naming the value when it is neither.
    """
    text = value.strip()
    if text in ("", "{MAP_INDEX}"):
        return -1
    if text.lstrip("-").isdigit():
        return int(text)
    raise HTTPException(400, f"map_index must be a whole number, got {value!r}")


def _task_job(dag_id: str, run_id: str, task_id: str, map_index: int) -> tuple[str, str | None]:
    try:
        task_data.check_task_instance(dag_id, run_id, task_id, map_index)
    except task_data.NotFound as error:
        raise HTTPException(404, str(error)) from None
    job_id = task_data.task_job_id(dag_id, run_id, task_id, map_index)
    if job_id is None:
        raise HTTPException(
            404,
            f"task {task_id} of run {run_id!r} has no AWS Batch job (yet): it is not a batch-fanout "
            "submit or watch task, or it has not reached Batch",
        )
    return job_id, task_data.task_connection_id(dag_id, run_id, task_id, map_index)


def _page(title: str, body: str, *, script: str = "", data: dict[str, Any] | None = None) -> HTMLResponse:
    config = json.dumps(data or {}).replace("<", "\\u003c")
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_static('views.css')}</style></head>"
        f"<body>{body}<script id='config' type='application/json'>{config}</script>"
        f"{f'<script>{script}</script>' if script else ''}</body></html>"
    )


def create_app() -> FastAPI:
    """The plugin's app (mounted by Airflow at :data:`batch_fanout.ui.paths.URL_PREFIX`)."""
    app = FastAPI(
        title="batch-fanout views",
        description="The array view of a batch-fanout task and the report view of a DAG run.",
        docs_url=None,
        redoc_url=None,
    )

    @app.get(
        "/array/{dag_id}/{run_id}/{task_id}", response_class=HTMLResponse, dependencies=[read_task_instances]
    )
    def array_page(
        request: Request, dag_id: str, run_id: str, task_id: str, *, map_index: str = "-1", child: str = ""
    ) -> HTMLResponse:
        """The array view: the task's job, per-state counts, one cell per logical index."""
        index = _map_index(map_index)
        root = request.scope.get("root_path", "")
        where = f"{quote(dag_id, safe='')}/{quote(run_id, safe='')}/{quote(task_id, safe='')}"
        query = f"?map_index={index}"
        heading = f"{task_id}{f'[{index}]' if index >= 0 else ''} · {run_id}"
        body = (
            f"<header><h1>Array view</h1><p class='where'>{html.escape(dag_id)} · {html.escape(heading)}</p>"
            "<p id='status' class='status'>Loading…</p><div id='counts' class='counts'></div>"
            "<div id='filters' class='filters' role='group' aria-label='Show'></div>"
            "<p id='jobs' class='jobs'></p></header>"
            "<main><div id='grid' class='grid' aria-label='Children by logical index'></div>"
            "<section id='child' class='child' hidden></section></main>"
        )
        return _page(
            f"Array view: {task_id}",
            body,
            script=_static("array.js"),
            data={
                "data_url": f"{root}/api/array/{where}{query}",
                "child_url": f"{root}/api/child/{where}{query}",
                "child": child,
                "refresh_seconds": 5,
            },
        )

    @app.get("/api/array/{dag_id}/{run_id}/{task_id}", dependencies=[read_task_instances])
    def array_json(dag_id: str, run_id: str, task_id: str, map_index: str = "-1") -> JSONResponse:
        """The array view's data (see :meth:`batch_fanout.ui.array.ArrayView.to_json`)."""
        job_id, conn_id = _task_job(dag_id, run_id, task_id, _map_index(map_index))
        batch, _, calls = _clients(conn_id)
        try:
            view = array_data.read_array_view(
                batch, job_id, calls, finished=FINISHED_CHILDREN, scope=conn_id or ""
            )
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        data = view.to_json()
        log.debug("array view of %s: %s", job_id, data["calls"])
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    @app.get("/api/child/{dag_id}/{run_id}/{task_id}", dependencies=[read_task_logs])
    def child_json(
        dag_id: str,
        run_id: str,
        task_id: str,
        *,
        map_index: str = "-1",
        child: str = Query(..., description="a child job id of the task's jobs"),
    ) -> JSONResponse:
        """One child's attempts and log; only a child of this task's jobs (or of its history)."""
        job_id, conn_id = _task_job(dag_id, run_id, task_id, _map_index(map_index))
        batch, logs, calls = _clients(conn_id)
        try:
            history = array_data.job_history(batch, job_id)
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        if not array_data.child_belongs(child, array_data.job_ids_of(history)):
            raise HTTPException(404, f"job {child!r} is not a job of task {task_id} in run {run_id!r}")
        try:
            details = array_data.child_details(batch, logs, child)
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        details["calls"] = dict(calls)
        return JSONResponse(details, headers={"Cache-Control": "no-store"})

    @app.get("/report/{dag_id}/{run_id}/", response_class=HTMLResponse, dependencies=[read_runs])
    def report_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
        """The report view: the run's report page and links to its tables and plots."""
        folder = _run_folder(dag_id, run_id)
        files = folder.listing("report")
        base = (
            f"{request.scope.get('root_path', '')}/report/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"
        )
        links = "".join(
            f"<li><a href='{html.escape(base)}/{html.escape(quote(item['path']))}' target='_blank' "
            f"rel='noopener'>{html.escape(item['name'])}</a></li>"
            for item in files
        )
        has_page = any(item["path"] == REPORT_PAGE for item in files)
        frame = (
            f"<iframe class='report' title='report.html' src='{html.escape(base)}/{REPORT_PAGE}'></iframe>"
            if has_page
            else f"<p class='bad'>No report yet: {html.escape(folder.uri)}/{REPORT_PAGE} does not exist "
            "(the aggregator writes it at the end of the run).</p>"
        )
        body = (
            f"<header><h1>Run report</h1><p class='where'>{html.escape(dag_id)} · {html.escape(run_id)} · "
            f"<code>{html.escape(folder.uri)}/report/</code></p>"
            f"<ul class='files'>{links}</ul></header><main>{frame}</main>"
        )
        return _page(f"Report: {dag_id} {run_id}", body)

    @app.get("/report/{dag_id}/{run_id}", include_in_schema=False, dependencies=[read_runs])
    def report_redirect(request: Request, dag_id: str, run_id: str) -> RedirectResponse:
        return RedirectResponse(str(request.url.replace(path=request.url.path + "/")))

    @app.get("/report/{dag_id}/{run_id}/{path:path}", dependencies=[read_runs])
    def report_file(dag_id: str, run_id: str, path: str) -> Response:
        """One file of the run's folder (never outside it)."""
        folder = _run_folder(dag_id, run_id)
        try:
            data, media = folder.read(path)
        except BadPath as error:
            raise HTTPException(400, str(error)) from None
        except FileNotFoundError as error:
            raise HTTPException(404, str(error)) from None
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if media.startswith("text/html"):
            headers["Content-Security-Policy"] = REPORT_POLICY
        return Response(data, media_type=media, headers=headers)

    return app


def _run_folder(dag_id: str, run_id: str) -> RunFolder:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalar(select(DagRun.run_id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if found is None:
        raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
    results_uri = task_data.run_results_uri(dag_id, run_id)
    if results_uri is None:
        raise HTTPException(
            404, f"run {run_id!r} of DAG {dag_id!r} names no results store (no task with a results_uri ran)"
        )
    try:
        return RunFolder(results_uri, dag_id, run_id)
    except BadPath as error:
        raise HTTPException(400, str(error)) from None

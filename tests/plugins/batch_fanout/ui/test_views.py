"""The array and report views, through Airflow's own API app and auth manager, reading a real run on
the local endpoint."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from batch_fanout.ui.paths import array_view_url, report_view_url


def _array(ui_run: dict[str, Any], kind: str = "api/array") -> str:
    return f"/batch-fanout/{kind}/{ui_run['dag_id']}/{quote(ui_run['run_id'], safe='')}/arr"


def test_array_view_shows_every_logical_index_across_the_retry(
    airflow_api: Any, ui_run: dict[str, Any], ui_connection: str, token_for: Callable[..., Any]
) -> None:
    from batch_fanout.ui.app import FINISHED_CHILDREN

    FINISHED_CHILDREN.clear()
    response = airflow_api.get(_array(ui_run), headers=token_for("viewer"))
    assert response.status_code == 200, response.text
    data = response.json()
    assert [job["size"] for job in data["jobs"]] == [5, 2]
    assert data["job"]["status"] == "SUCCEEDED" and data["job"]["queue"] == "batch-fanout-queue"
    assert data["counts"]["SUCCEEDED"] == 5 and data["total"] == 5 and data["running"] is False
    cells = {cell[0]: cell for cell in data["cells"]}
    assert sorted(cells) == [0, 1, 2, 3, 4]
    first, retry = (job["job_id"] for job in data["jobs"])
    # Indices 1 and 3 failed in the first job (exit code 5) and succeeded as children 0 and 1 of the retry.
    for logical, child in ((1, 0), (3, 1)):
        _, state, runs, exit_code, _, _, job_id, earlier = cells[logical]
        assert (state, runs, exit_code, job_id) == ("SUCCEEDED", 2, 0, f"{retry}:{child}")
        assert earlier == [[f"{first}:{logical}", "FAILED", 5]]
    assert cells[2][1:3] == ["SUCCEEDED", 1] and cells[2][6] == f"{first}:2"
    # Bounded: one DescribeJobs per job of the history, ListJobs per state with children.
    assert data["calls"]["DescribeJobs"] == 2
    assert 2 <= data["calls"]["ListJobs"] <= 2 * 7
    # Both jobs are finished: a refresh lists no child again, and shows the same.
    again = airflow_api.get(_array(ui_run), headers=token_for("viewer")).json()
    assert again["calls"] == {"DescribeJobs": 2}
    assert again["cells"] == data["cells"]


def test_child_log_of_a_failed_attempt_and_of_its_rerun(
    airflow_api: Any, ui_run: dict[str, Any], ui_connection: str, token_for: Callable[..., Any]
) -> None:
    data = airflow_api.get(_array(ui_run), headers=token_for("viewer")).json()
    first = data["jobs"][0]["job_id"]
    url = _array(ui_run, "api/child")
    failed = airflow_api.get(url, params={"child": f"{first}:3"}, headers=token_for("viewer")).json()
    assert failed["status"] == "FAILED" and failed["attempts"][-1]["exit_code"] == 5
    assert failed["log_stream"] and "probe index 3 failing once" in failed["log"]
    assert failed["calls"] == {"DescribeJobs": 3, "GetLogEvents": 1}
    page = airflow_api.get(_array(ui_run, "array"), headers=token_for("viewer"))
    assert page.status_code == 200 and "Array view" in page.text and "api/child" in page.text


def test_child_log_only_of_the_tasks_own_jobs(
    *,
    airflow_api: Any,
    ui_run: dict[str, Any],
    ui_connection: str,
    ui_endpoint: Any,
    token_for: Callable[..., Any],
    tmp_path: Any,
) -> None:
    batch = ui_endpoint.client("batch")
    other = batch.submit_job(
        jobName="other",
        jobQueue="batch-fanout-queue",
        jobDefinition="fanout-probe-ui",
        containerOverrides={"command": ["python", "probe.py", "--record-dir", str(tmp_path)]},
    )
    response = airflow_api.get(
        _array(ui_run, "api/child"), params={"child": other["jobId"]}, headers=token_for("viewer")
    )
    assert response.status_code == 404
    assert "is not a job of task arr" in response.json()["detail"]
    batch.terminate_job(jobId=other["jobId"], reason="test done")


def test_the_tab_of_a_task_that_is_not_mapped(
    airflow_api: Any, ui_run: dict[str, Any], ui_connection: str, token_for: Callable[..., Any]
) -> None:
    # Airflow's UI leaves {MAP_INDEX} unfilled in the tab's URL for a task that is not mapped.
    page = airflow_api.get(_array(ui_run, "array") + "?map_index={MAP_INDEX}", headers=token_for("viewer"))
    assert page.status_code == 200 and "map_index=-1" in page.text
    bad = airflow_api.get(_array(ui_run) + "?map_index=x", headers=token_for("viewer"))
    assert bad.status_code == 400 and "map_index must be a whole number, got 'x'" in bad.json()["detail"]


def test_unknown_task_instance_is_404_naming_it(
    airflow_api: Any, ui_run: dict[str, Any], token_for: Callable[..., Any]
) -> None:
    response = airflow_api.get(
        f"/batch-fanout/api/array/{ui_run['dag_id']}/no-such-run/arr", headers=token_for("viewer")
    )
    assert response.status_code == 404
    assert "no task instance arr in run 'no-such-run'" in response.json()["detail"]


@pytest.fixture
def report(ui_run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A report in the run's folder, a secret beside the folder, and a link from inside to it."""
    folder = ui_run["run_folder"] / "report"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text(
        "<html><body><h1>Run report</h1><img src='data:image/png;base64,iVBO'></body></html>"
    )
    (folder / "stress.csv").write_text("index,method\n0,ackermann\n")
    (folder / "report.json").write_text('{"summary": {"complete": true}}')
    secret = ui_run["results"] / ui_run["dag_id"] / "secret.txt"
    secret.write_text("not for the view")
    link = folder / "escape.txt"
    if not link.is_symlink():
        os.symlink(secret, link)
    yield {"folder": folder}


def test_report_view_serves_the_run_report_and_its_files(
    airflow_api: Any, ui_run: dict[str, Any], report: dict[str, Any], token_for: Callable[..., Any]
) -> None:
    base = report_view_url(ui_run["dag_id"], ui_run["run_id"])
    page = airflow_api.get(base, headers=token_for("viewer"))
    assert page.status_code == 200, page.text
    assert "report/report.html" in page.text and "stress.csv" in page.text and "report.json" in page.text
    html = airflow_api.get(base + "report/report.html", headers=token_for("viewer"))
    assert html.status_code == 200 and "<h1>Run report</h1>" in html.text
    assert html.headers["content-type"].startswith("text/html")
    assert "script-src" not in html.headers["content-security-policy"]  # default-src 'none': no script
    assert "default-src 'none'" in html.headers["content-security-policy"]
    csv = airflow_api.get(base + "report/stress.csv", headers=token_for("viewer"))
    assert csv.status_code == 200 and csv.text.startswith("index,method")
    missing = airflow_api.get(base + "report/nothing.png", headers=token_for("viewer"))
    assert missing.status_code == 404 and "report/nothing.png does not exist" in missing.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "report/../../secret.txt",
        "report/%2e%2e/%2e%2e/secret.txt",
        "%2Fetc%2Fpasswd",
        "report/..%5C..%5Csecret.txt",
        "report/escape.txt",
    ],
)
def test_report_view_never_serves_a_file_outside_the_run_folder(
    airflow_api: Any, ui_run: dict[str, Any], report: dict[str, Any], token_for: Callable[..., Any], path: str
) -> None:
    base = report_view_url(ui_run["dag_id"], ui_run["run_id"])
    response = airflow_api.get(base + path, headers=token_for("viewer"))
    assert response.status_code in (400, 404), response.text
    assert "not for the view" not in response.text


def test_views_need_a_login(airflow_api: Any, ui_run: dict[str, Any]) -> None:
    for url in (
        _array(ui_run),
        _array(ui_run, "array"),
        report_view_url(ui_run["dag_id"], ui_run["run_id"]) + "report/report.html",
    ):
        assert airflow_api.get(url).status_code == 401


@pytest.fixture
def teams(monkeypatch: pytest.MonkeyPatch, airflow_db: Any) -> Iterator[None]:
    """Multi-team mode of the Simple auth manager: the DAGs' bundle belongs to team ``fanout``, a
    second team ``others`` owns nothing. Per-DAG access is what a team's membership grants."""
    from airflow.models.dag import clear_team_name_cache
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    with create_session() as session:
        for name in ("fanout", "others"):
            if session.get(Team, name) is None and not session.query(Team).filter_by(name=name).first():
                session.add(Team(name=name))
        session.flush()
        bundle = session.get(DagBundleModel, "dags-folder")
        assert bundle is not None, "the DAG bundle dags-folder is not in the metadata database"
        bundle.teams = [session.query(Team).filter_by(name="fanout").one()]
    # Airflow caches a DAG's team for 30 s; the other tests run without teams.
    clear_team_name_cache()
    try:
        yield
    finally:
        with create_session() as session:
            bundle = session.get(DagBundleModel, "dags-folder")
            if bundle is not None:
                bundle.teams = []
        clear_team_name_cache()


def test_a_user_who_may_not_read_the_dag_gets_403_from_every_endpoint(
    *,
    airflow_api: Any,
    ui_run: dict[str, Any],
    ui_connection: str,
    report: dict[str, Any],
    teams: None,
    token_for: Callable[..., Any],
) -> None:
    first = airflow_api.get(_array(ui_run), headers=token_for("viewer", ["fanout"])).json()["jobs"][0][
        "job_id"
    ]
    urls = [
        _array(ui_run),
        _array(ui_run, "array"),
        _array(ui_run, "api/child") + f"?child={first}:1",
        report_view_url(ui_run["dag_id"], ui_run["run_id"]),
        report_view_url(ui_run["dag_id"], ui_run["run_id"]) + "report/report.html",
        report_view_url(ui_run["dag_id"], ui_run["run_id"]) + "report/stress.csv",
    ]
    for url in urls:
        assert airflow_api.get(url, headers=token_for("viewer", ["fanout"])).status_code == 200, url
        denied = airflow_api.get(url, headers=token_for("viewer", ["others"]))
        assert denied.status_code == 403, url
        assert "Run report" not in denied.text and first not in denied.text


def test_view_urls_are_relative_to_airflows_base_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert array_view_url("d", "manual__2026-01-01T00:00:00+00:00", "t", 3, child="abc:1") == (
        "/batch-fanout/array/d/manual__2026-01-01T00%3A00%3A00%2B00%3A00/t?map_index=3&child=abc%3A1"
    )
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/team/")
    assert report_view_url("d", "r") == "/team/batch-fanout/report/d/r/"
    assert (
        report_view_url("d", "r", absolute=True)
        == "https://airflow.example.com/team/batch-fanout/report/d/r/"
    )

"""The task's extra links as the UI gets them (Airflow computes them in the worker when the task
ends): the views on both backends, the AWS console only when the connection has no endpoint_url."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from batch_fanout.links.batch import OPERATOR_LINKS, SENSOR_LINKS, targets_endpoint
from batch_fanout.operators.batch import BatchFanoutOperator
from batch_fanout.sensors.batch import BatchFanoutSensor


def test_on_a_local_endpoint_links_lead_to_the_views_and_never_to_the_console(
    airflow_api: Any, ui_run: dict[str, Any], token_for: Callable[..., Any]
) -> None:
    response = airflow_api.get(
        f"/api/v2/dags/{ui_run['dag_id']}/dagRuns/{quote(ui_run['run_id'], safe='')}/taskInstances/arr/links",
        headers=token_for("viewer"),
    )
    assert response.status_code == 200, response.text
    links = response.json()["extra_links"]
    shown = {name: url for name, url in links.items() if url}
    assert set(shown) == {"Array View", "Child Log", "Run Report"}, links
    assert shown["Array View"].startswith("/batch-fanout/array/bf_ui_views/")
    assert "child=" in shown["Child Log"]
    assert shown["Run Report"].startswith("/batch-fanout/report/bf_ui_views/")
    # Each leads to a page of the plugin.
    for url in shown.values():
        assert airflow_api.get(url, headers=token_for("viewer")).status_code == 200, url


@pytest.mark.parametrize(
    ("extra", "local"),
    [
        ({"region_name": "us-east-1"}, False),
        ({"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:8699"}, True),
        (
            {"region_name": "us-east-1", "service_config": {"batch": {"endpoint_url": "http://127.0.0.1:1"}}},
            True,
        ),
    ],
    ids=["aws", "endpoint_url", "batch-endpoint"],
)
def test_console_links_only_without_an_endpoint_url(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], local: bool
) -> None:
    value = json.dumps({"conn_type": "aws", "login": "a", "password": "b", "extra": extra})
    monkeypatch.setenv("AIRFLOW_CONN_LINK_TEST_AWS", value)
    operator = BatchFanoutOperator(
        task_id="t", job_name="j", job_definition="d", job_queue="q", aws_conn_id="link_test_aws"
    )
    sensor = BatchFanoutSensor(task_id="s", job_id="abc", aws_conn_id="link_test_aws")
    assert targets_endpoint(operator) is local
    assert targets_endpoint(sensor) is local


def test_link_names_are_unique() -> None:
    for links in (OPERATOR_LINKS, SENSOR_LINKS):
        assert len({link.name for link in links}) == len(links)

"""The provider's extra links: registered in get_provider_info, attached to the operator and sensor,
and formatted into console, logs and results addresses."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink
from airflow.sdk.module_loading import import_string

from batch_fanout.links.batch import (
    ALL_LINKS,
    BatchFanoutArrayViewLink,
    BatchFanoutChildJobLink,
    BatchFanoutChildLogLink,
    BatchFanoutJobDefinitionLink,
    BatchFanoutJobLink,
    BatchFanoutJobQueueLink,
    BatchFanoutLogsLink,
    BatchFanoutReportLink,
    BatchFanoutResultsLink,
)
from batch_fanout.operators.batch import BatchFanoutOperator
from batch_fanout.provider_info import get_provider_info
from batch_fanout.sensors.batch import BatchFanoutSensor


def test_links_and_trigger_are_registered_with_the_provider() -> None:
    info = get_provider_info()
    links = [import_string(path) for path in info["extra-links"]]
    assert set(links) == set(ALL_LINKS)
    assert all(issubclass(link, BaseOperatorLink) for link in links)
    assert len({link.name for link in links}) == len(links)
    modules = [module for entry in info["triggers"] for module in entry["python-modules"]]
    assert "batch_fanout.triggers.batch" in modules
    import_string("batch_fanout.triggers.batch.BatchFanoutTrigger")


def test_operator_and_sensor_offer_the_links() -> None:
    operator_links = {type(link) for link in BatchFanoutOperator.operator_extra_links}
    assert operator_links == set(ALL_LINKS)
    assert {
        BatchFanoutArrayViewLink,
        BatchFanoutChildLogLink,
        BatchFanoutReportLink,
        BatchFanoutJobDefinitionLink,
        BatchFanoutJobQueueLink,
    } <= operator_links
    assert {type(link) for link in BatchFanoutSensor.operator_extra_links} == {
        BatchFanoutArrayViewLink,
        BatchFanoutChildLogLink,
        BatchFanoutJobLink,
        BatchFanoutChildJobLink,
        BatchFanoutLogsLink,
    }


def test_console_links_format() -> None:
    assert (
        BatchFanoutJobLink().format_link(aws_domain="aws.amazon.com", region_name="eu-west-1", job_id="abc")
        == "https://console.aws.amazon.com/batch/home?region=eu-west-1#jobs/detail/abc"
    )
    assert (
        BatchFanoutChildJobLink()
        .format_link(aws_domain="aws.amazon.com", region_name="eu-west-1", job_id="abc:3")
        .endswith("#jobs/detail/abc:3")
    )


def test_logs_link_points_at_a_stream_or_the_group() -> None:
    common = {"aws_domain": "aws.amazon.com", "region_name": "us-east-1", "log_group": "/aws/batch/job"}
    assert BatchFanoutLogsLink().format_link(**common, log_stream=None) == (
        "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#logsV2:log-groups/log-group/%2Faws%2Fbatch%2Fjob"
    )
    assert (
        BatchFanoutLogsLink()
        .format_link(**common, log_stream="def/default/abc")
        .endswith("log-group/%2Faws%2Fbatch%2Fjob/log-events/def%2Fdefault%2Fabc")
    )
    assert BatchFanoutLogsLink().format_link(aws_domain="aws.amazon.com", region_name="us-east-1") == ""


def test_results_link_for_s3_and_local_stores() -> None:
    assert BatchFanoutResultsLink.results_url("s3://bucket/runs/", "dag", "manual__1") == (
        "https://s3.console.aws.amazon.com/s3/buckets/bucket?prefix=runs/dag/manual__1/"
    )
    assert (
        BatchFanoutResultsLink.results_url("file:///data/results", "dag", "r")
        == "file:///data/results/dag/r/"
    )


def test_links_computed_when_the_task_ends_use_what_its_try_stored(monkeypatch: Any) -> None:
    from airflow.providers.common.compat.sdk import XCom

    from batch_fanout.links import batch as links
    from batch_fanout.ui.paths import array_view_url

    pushed: dict[str, Any] = {}

    class TaskInstance:
        dag_id, task_id, run_id, map_index = "d", "t", "r", -1

        def xcom_push(self, key: str, value: Any) -> None:
            pushed[key] = value

    def no_xcom_reads(**kwargs: Any) -> Any:
        raise AssertionError(f"the link read XCom back: {kwargs}")

    operator = BatchFanoutOperator(task_id="t", job_definition="d", job_queue="q", aws_conn_id=None)
    context: Any = {"ti": TaskInstance()}
    links.persist_job_links(
        context,
        operator,
        region_name="eu-west-1",
        aws_partition="aws",
        job_id="abc",
        description={"arrayProperties": {"size": 3}},
    )
    BatchFanoutResultsLink.persist_results(context, operator, "s3://bucket/prefix")
    monkeypatch.setattr(XCom, "get_value", no_xcom_reads)
    key: Any = type("Key", (), {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1})()

    assert BatchFanoutArrayViewLink().get_link(operator, ti_key=key).startswith("/batch-fanout/array/d/")
    assert BatchFanoutChildLogLink().get_link(operator, ti_key=key) == array_view_url(
        "d", "r", "t", -1, child="abc:0"
    )
    assert BatchFanoutReportLink().get_link(operator, ti_key=key).startswith("/batch-fanout/report/d/")
    # Exactly what XCom holds, so the worker and a later reader of XCom agree.
    assert pushed[BatchFanoutJobLink.key] == {
        "region_name": "eu-west-1",
        "aws_domain": "aws.amazon.com",
        "job_id": "abc",
    }
    assert pushed[BatchFanoutChildJobLink.key]["job_id"] == "abc:0"

"""The provider's extra links: registered in get_provider_info, attached to the operator and sensor,
and formatted into console, logs and results addresses."""

from __future__ import annotations

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

"""Extra links of the batch-fanout operator and sensor.

- :class:`BatchFanoutJobLink`: the job (array parent or plain job) in the AWS Batch console;
- :class:`BatchFanoutChildJobLink`: a child of an array job in the console (the first failed child
  once children failed, else child 0);
- :class:`BatchFanoutLogsLink`: CloudWatch Logs of the job (the first failed child's stream, the plain
  job's stream, or the log group);
- :class:`BatchFanoutResultsLink`: the run's folder in the results store (``s3://`` opens in the S3
  console, anything else is linked as it is).

Each is stored in XCom by the task (``persist``) and registered in ``get_provider_info``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink
from airflow.providers.amazon.aws.utils.suppress import return_on_error
from airflow.providers.common.compat.sdk import XCom

if TYPE_CHECKING:
    from airflow.models import BaseOperator
    from airflow.providers.common.compat.sdk import TaskInstanceKey
    from airflow.sdk import Context


class BatchFanoutJobLink(BaseAwsLink):
    """The Batch job of the task's latest try, in the AWS Batch console."""

    name = "Batch Job"
    key = "batch_fanout_job"
    format_str = BASE_AWS_CONSOLE_LINK + "/batch/home?region={region_name}#jobs/detail/{job_id}"


class BatchFanoutChildJobLink(BaseAwsLink):
    """A child of the task's array job in the AWS Batch console (the first failed one, else child 0)."""

    name = "Batch Child Job"
    key = "batch_fanout_child_job"
    format_str = BASE_AWS_CONSOLE_LINK + "/batch/home?region={region_name}#jobs/detail/{job_id}"


class BatchFanoutLogsLink(BaseAwsLink):
    """CloudWatch Logs of the job: a stream when one is known, else the log group."""

    name = "Batch Job Logs"
    key = "batch_fanout_logs"
    format_str = (
        BASE_AWS_CONSOLE_LINK
        + "/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/{log_group}"
    )

    def format_link(self, **kwargs: Any) -> str:
        if "log_group" not in kwargs:
            return ""
        link = super().format_link(**{**kwargs, "log_group": quote_plus(kwargs["log_group"])})
        stream = kwargs.get("log_stream")
        return f"{link}/log-events/{quote_plus(stream)}" if link and stream else link


class BatchFanoutResultsLink(BaseAwsLink):
    """The run's folder ``<results>/<dag_id>/<run_id>/`` in the results store."""

    name = "Run Results"
    key = "batch_fanout_results"
    format_str = "{url}"

    @staticmethod
    def results_url(results_uri: str, dag_id: str, run_id: str) -> str:
        """Where a person opens the run's results: the S3 console for ``s3://``, else the URI itself."""
        base = results_uri.rstrip("/")
        run_folder = f"{base}/{dag_id}/{run_id}/"
        if base.startswith("s3://"):
            bucket, _, prefix = run_folder[len("s3://") :].partition("/")
            return f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={quote(prefix, safe='/')}"
        return run_folder

    @return_on_error("")
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        conf = XCom.get_value(key=self.key, ti_key=ti_key)
        return conf.get("url", "") if conf else ""

    @classmethod
    def persist_results(cls, context: Context, operator: BaseOperator, results_uri: str) -> None:
        """Store the run's results link (no AWS call, so it works for any results store)."""
        if not operator.do_xcom_push:
            return
        ti = context["ti"]
        context["ti"].xcom_push(
            key=cls.key, value={"url": cls.results_url(results_uri, ti.dag_id, ti.run_id)}
        )


ALL_LINKS = (BatchFanoutJobLink, BatchFanoutChildJobLink, BatchFanoutLogsLink, BatchFanoutResultsLink)


def persist_job_links(
    context: Context,
    operator: BaseOperator,
    *,
    region_name: str | None,
    aws_partition: str,
    job_id: str,
    description: dict[str, Any] | None = None,
    first_failed_child: dict[str, Any] | None = None,
) -> None:
    """Store the job, child and logs links of a job in XCom (no AWS call: uses what the task has).

    :param context: the task's context.
    :param operator: the operator or sensor.
    :param region_name: the connection's region.
    :param aws_partition: the connection's partition (``aws``, ``aws-cn`` ...).
    :param job_id: the job (array parent or plain job).
    :param description: its DescribeJobs entry, if known, to find its log stream and array size.
    :param first_failed_child: ``{"job_id", "log_group", "log_stream"}`` of the first failed child.
    """
    common = {
        "context": context,
        "operator": operator,
        "region_name": region_name,
        "aws_partition": aws_partition,
    }
    BatchFanoutJobLink.persist(**common, job_id=job_id)
    description = description or {}
    is_array = bool((description.get("arrayProperties") or {}).get("size"))
    if is_array:
        child_id = first_failed_child["job_id"] if first_failed_child else f"{job_id}:0"
        BatchFanoutChildJobLink.persist(**common, job_id=child_id)
    elif operator.do_xcom_push:
        # A plain job has no children: an empty value shows no link, where no value at all makes
        # Airflow log a failed XCom lookup for the link after every try.
        context["ti"].xcom_push(key=BatchFanoutChildJobLink.key, value={})
    container = description.get("container") or {}
    options = (container.get("logConfiguration") or {}).get("options") or {}
    log_group = options.get("awslogs-group", "/aws/batch/job")
    log_stream = container.get("logStreamName")
    if first_failed_child:
        log_group = first_failed_child.get("log_group") or log_group
        log_stream = first_failed_child.get("log_stream")
    BatchFanoutLogsLink.persist(**common, log_group=log_group, log_stream=log_stream)

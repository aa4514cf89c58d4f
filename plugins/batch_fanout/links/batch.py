"""Extra links of the batch-fanout operator and sensor.

Links into the plugin's views (:mod:`batch_fanout.ui`), on AWS and on a local endpoint alike:

- :class:`BatchFanoutArrayViewLink`: the task's array view (every child, its state and attempts);
- :class:`BatchFanoutChildLogLink`: the array view opened on one child's log (the first failed child
  once children failed, else child 0, or the plain job);
- :class:`BatchFanoutReportLink`: the run's report view (``report/report.html`` with its tables and
  plots), for tasks given a ``results_uri``.

AWS console links, shown only when the task's connection has no ``endpoint_url`` (with one, the job
lives on an endpoint that no AWS console knows, so these links are left empty and Airflow hides them):

- :class:`BatchFanoutJobLink`: the job (array parent or plain job) in the AWS Batch console;
- :class:`BatchFanoutChildJobLink`: a child of an array job in the console (the first failed child
  once children failed, else child 0);
- :class:`BatchFanoutLogsLink`: CloudWatch Logs of the job (the first failed child's stream, the plain
  job's stream, or the log group);
- :class:`BatchFanoutResultsLink`: the run's folder in the S3 console, for an ``s3://`` results store
  (a ``file://`` folder is not linked: browsers refuse to open it from an Airflow page);
- :class:`BatchFanoutJobDefinitionLink`, :class:`BatchFanoutJobQueueLink`: the Amazon provider's
  definition and queue links, under the same rule.

Each is stored in XCom by the task (``persist``) and registered in ``get_provider_info``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink
from airflow.providers.amazon.aws.links.batch import BatchJobDefinitionLink, BatchJobQueueLink
from airflow.providers.amazon.aws.utils.suppress import return_on_error
from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from batch_fanout.ui.paths import array_view_url, report_view_url

if TYPE_CHECKING:
    from airflow.models import BaseOperator
    from airflow.providers.common.compat.sdk import TaskInstanceKey
    from airflow.sdk import Context


def targets_endpoint(operator: BaseOperator) -> bool:
    """Whether the task's AWS connection names an ``endpoint_url`` for Batch (a local or private
    endpoint, which no AWS console knows).

    Airflow computes a task's links in the worker when the task ends and stores them in XCom, so this
    reads the task's own connection through its hook (no metadata database access).
    """
    hook = getattr(operator, "hook", None)
    config = getattr(hook, "conn_config", None) if hook is not None else None
    if config is None:
        return False
    return bool(config.endpoint_url or config.get_service_endpoint_url("batch"))


class _ConsoleLink(BaseAwsLink):
    """An AWS console link, left empty when the task's connection targets an ``endpoint_url``."""

    @return_on_error("")
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if targets_endpoint(operator):
            return ""
        return str(super().get_link(operator, ti_key=ti_key))


#: The operator attribute holding the link values its try stored (by XCom key).
_STORED_ATTRIBUTE = "_batch_fanout_stored_links"


def _remember(operator: BaseOperator, key: str, value: object) -> None:
    """Keep a link value this try stores in XCom on the operator too."""
    stored = operator.__dict__.setdefault(_STORED_ATTRIBUTE, {})
    stored[key] = value


def _stored(operator: BaseOperator, key: str, ti_key: TaskInstanceKey) -> Any:
    """A link's stored value: the one this try stored, else XCom's.

    Airflow computes every extra link in the worker when the task ends, on the operator that ran: the
    values the try itself stored are at hand there, and reading each back would be one Execution API
    call per link and task.
    """
    stored = operator.__dict__.get(_STORED_ATTRIBUTE) or {}
    if key in stored:
        return stored[key]
    return XCom.get_value(key=key, ti_key=ti_key)


def _job_id(operator: BaseOperator, ti_key: TaskInstanceKey) -> str:
    conf = _stored(operator, BatchFanoutJobLink.key, ti_key)
    return str(conf.get("job_id") or "") if isinstance(conf, dict) else ""


class BatchFanoutArrayViewLink(BaseOperatorLink):
    """The task's array view: its job's children by logical index, with their attempts and logs."""

    name = "Array View"

    @return_on_error("")
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if not _job_id(operator, ti_key):
            return ""
        return array_view_url(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)


class BatchFanoutChildLogLink(BaseOperatorLink):
    """The array view opened on the log of one child: the first failed one, else child 0."""

    name = "Child Log"

    @return_on_error("")
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        job_id = _job_id(operator, ti_key)
        if not job_id:
            return ""
        child = _stored(operator, BatchFanoutChildJobLink.key, ti_key)
        child_id = child.get("job_id") if isinstance(child, dict) else None
        return array_view_url(
            ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index, child=child_id or job_id
        )


class BatchFanoutReportLink(BaseOperatorLink):
    """The run's report view, for a task that was given the results store."""

    name = "Run Report"

    @return_on_error("")
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if not _stored(operator, BatchFanoutResultsLink.key, ti_key):
            return ""
        return report_view_url(ti_key.dag_id, ti_key.run_id)


class BatchFanoutJobDefinitionLink(_ConsoleLink, BatchJobDefinitionLink):
    """The Amazon provider's job definition link (same XCom), hidden on an ``endpoint_url``."""


class BatchFanoutJobQueueLink(_ConsoleLink, BatchJobQueueLink):
    """The Amazon provider's job queue link (same XCom), hidden on an ``endpoint_url``."""


class BatchFanoutJobLink(_ConsoleLink):
    """The Batch job of the task's latest try, in the AWS Batch console."""

    name = "Batch Job"
    key = "batch_fanout_job"
    format_str = BASE_AWS_CONSOLE_LINK + "/batch/home?region={region_name}#jobs/detail/{job_id}"


class BatchFanoutChildJobLink(_ConsoleLink):
    """A child of the task's array job in the AWS Batch console (the first failed one, else child 0)."""

    name = "Batch Child Job"
    key = "batch_fanout_child_job"
    format_str = BASE_AWS_CONSOLE_LINK + "/batch/home?region={region_name}#jobs/detail/{job_id}"


class BatchFanoutLogsLink(_ConsoleLink):
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
        """Where the run's results are: the S3 console for ``s3://``, else the folder's URI (stored,
        but not linked: see :meth:`get_link`)."""
        base = results_uri.rstrip("/")
        run_folder = f"{base}/{dag_id}/{run_id}/"
        if base.startswith("s3://"):
            bucket, _, prefix = run_folder[len("s3://") :].partition("/")
            return f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={quote(prefix, safe='/')}"
        return run_folder

    @return_on_error("")
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        # A file:// folder cannot be opened from an http page: the Run Report link leads to it.
        if targets_endpoint(operator):
            return ""
        conf = _stored(operator, self.key, ti_key)
        url = str(conf.get("url", "")) if conf else ""
        return url if url.startswith("https://") else ""

    @classmethod
    def persist_results(cls, context: Context, operator: BaseOperator, results_uri: str) -> None:
        """Store the run's results link (no AWS call, so it works for any results store)."""
        if not operator.do_xcom_push:
            return
        ti = context["ti"]
        value = {"url": cls.results_url(results_uri, ti.dag_id, ti.run_id)}
        context["ti"].xcom_push(key=cls.key, value=value)
        _remember(operator, cls.key, value)


ALL_LINKS = (
    BatchFanoutArrayViewLink,
    BatchFanoutChildLogLink,
    BatchFanoutReportLink,
    BatchFanoutJobLink,
    BatchFanoutChildJobLink,
    BatchFanoutLogsLink,
    BatchFanoutResultsLink,
    BatchFanoutJobDefinitionLink,
    BatchFanoutJobQueueLink,
)

#: The operator's extra links: the views first, then the AWS console.
OPERATOR_LINKS = tuple(link() for link in ALL_LINKS)
#: The sensor's: the same without the run's results (a sensor is given no results store).
SENSOR_LINKS = tuple(
    link()
    for link in (
        BatchFanoutArrayViewLink,
        BatchFanoutChildLogLink,
        BatchFanoutJobLink,
        BatchFanoutChildJobLink,
        BatchFanoutLogsLink,
    )
)


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
    child_id = (first_failed_child["job_id"] if first_failed_child else f"{job_id}:0") if is_array else None
    if child_id:
        BatchFanoutChildJobLink.persist(**common, job_id=child_id)
    elif operator.do_xcom_push:
        # A plain job has no children: an empty value shows no link, where no value at all makes
        # Airflow log a failed XCom lookup for the link after every try.
        context["ti"].xcom_push(key=BatchFanoutChildJobLink.key, value={})
    if operator.do_xcom_push:
        # The values just stored, as BaseAwsLink.persist stores them, for the links computed when
        # the task ends.
        where = {"region_name": region_name, "aws_domain": BaseAwsLink.get_aws_domain(aws_partition)}
        _remember(operator, BatchFanoutJobLink.key, {**where, "job_id": job_id})
        _remember(operator, BatchFanoutChildJobLink.key, {**where, "job_id": child_id} if child_id else {})
    container = description.get("container") or {}
    options = (container.get("logConfiguration") or {}).get("options") or {}
    log_group = options.get("awslogs-group", "/aws/batch/job")
    log_stream = container.get("logStreamName")
    if first_failed_child:
        log_group = first_failed_child.get("log_group") or log_group
        log_stream = first_failed_child.get("log_stream")
    BatchFanoutLogsLink.persist(**common, log_group=log_group, log_stream=log_stream)

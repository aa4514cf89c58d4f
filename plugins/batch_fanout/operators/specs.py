"""An operator that registers every batch-fanout job definition and returns what a run should pin.

Put it first in a DAG: its XCom ``return_value`` maps each job definition name to
``name:revision``, and the submitting tasks use those pinned revisions, so a deploy in the middle of
a run never changes what the run executes. Registration is idempotent (a content hash kept as a tag),
so running it on every DAG run adds a revision only when a spec changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

if TYPE_CHECKING:
    from batch_fanout.specs.render import SpecSettings

# Airflow variables read when the matching argument is not given.
SETTING_VARIABLES = {
    "image_registry": "batch_fanout_image_registry",
    "image_tag": "batch_fanout_image_tag",
    "job_role_arn": "batch_fanout_job_role_arn",
    "execution_role_arn": "batch_fanout_execution_role_arn",
    "platform": "batch_fanout_platform",
}


class RegisterJobDefinitionsOperator(AwsBaseOperator[BatchClientHook]):
    """Register the job definitions of ``include/specs/`` idempotently and return the pinned map.

    Every spec is validated against the AWS Batch API model first; if any is invalid the task fails
    (without retries, since a retry cannot fix a spec) and nothing is registered.

    :param specs_dir: the specs directory; ``$BATCH_FANOUT_SPECS_DIR``, else ``include/specs`` under
        the current directory or the project
    :param image_registry: the registry of the job images; default: the Airflow variable
        ``batch_fanout_image_registry`` (``local`` for the local endpoint)
    :param image_tag: the tag of the job images; default: the Airflow variable
        ``batch_fanout_image_tag`` (``latest`` for the local endpoint)
    :param job_role_arn: the role the jobs run as; default: the Airflow variable
        ``batch_fanout_job_role_arn`` (unset for the local endpoint)
    :param execution_role_arn: the execution role; default: the Airflow variable
        ``batch_fanout_execution_role_arn``
    :param platform: ``EC2`` or ``FARGATE``; default: the Airflow variable ``batch_fanout_platform``,
        else ``EC2``
    :param aws_conn_id: the Airflow AWS connection (AWS, or the local endpoint through its
        ``endpoint_url``)
    :return: ``{job definition name: "name:revision"}`` (XCom ``return_value``)
    """

    aws_hook_class = BatchClientHook
    template_fields: Sequence[str] = aws_template_fields(
        "specs_dir", "image_registry", "image_tag", "job_role_arn", "execution_role_arn", "platform"
    )
    ui_color = "#f4d9c6"

    def __init__(
        self,
        *,
        specs_dir: str | None = None,
        image_registry: str | None = None,
        image_tag: str | None = None,
        job_role_arn: str | None = None,
        execution_role_arn: str | None = None,
        platform: str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(aws_conn_id=aws_conn_id, **kwargs)
        self.specs_dir = specs_dir
        self.image_registry = image_registry
        self.image_tag = image_tag
        self.job_role_arn = job_role_arn
        self.execution_role_arn = execution_role_arn
        self.platform = platform

    def settings(self) -> SpecSettings:
        """The render settings: arguments first, then the Airflow variables."""
        from airflow.sdk import Variable

        from batch_fanout.specs.render import SpecSettings

        values: dict[str, Any] = {}
        sources = {}
        for name, variable in SETTING_VARIABLES.items():
            sources[name] = f"the argument {name} or the Airflow variable {variable}"
            value = getattr(self, name) or Variable.get(variable, default=None)
            if value:
                values[name] = value
        return SpecSettings(**values, sources=sources)

    def execute(self, context: Any) -> dict[str, str]:
        from airflow.sdk.exceptions import AirflowFailException

        from batch_fanout.specs.errors import SpecError
        from batch_fanout.specs.loader import load_specs
        from batch_fanout.specs.register import pinned_map, register_rendered
        from batch_fanout.specs.render import render_job_definitions

        try:
            specs = load_specs(Path(self.specs_dir) if self.specs_dir else None)
            rendered = render_job_definitions(specs, self.settings())
        except SpecError as error:
            raise AirflowFailException(str(error)) from error
        outcomes = register_rendered(self.hook.client, rendered)
        for outcome in outcomes:
            self.log.info("%s", outcome.describe())
        return pinned_map(outcomes)

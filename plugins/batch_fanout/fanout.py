"""The fan-out builder: leader → arrays → aggregator in one call, with the submit tasks and watchers.

A user's whole pipeline::

    from batch_fanout.fanout import Array, Stage, fan_out

    with DAG("my_fanout", schedule=None, start_date=datetime(2026, 1, 1), params={"n": 8}):
        fan_out(
            job_queue="my-queue",
            leader=Stage("leader", "my-leader"),
            arrays=[Array("work", "my-worker", size="{{ params.n }}", dependency="N_TO_N")],
            aggregator=Stage("aggregate", "my-aggregator"),
        )

**Modes.** ``all_at_once`` (default) submits every job at the start with AWS Batch ``dependsOn``
(task ``submit_<name>``, ``wait_for_completion=False``), so Batch starts each job the moment its
dependencies end, with no polling gap; then one :class:`~batch_fanout.sensors.batch.BatchFanoutSensor`
per stage (``watch_<name>``) follows the stages in order and reports progress and failures. Array
sizes must be known at the start (an int, a template of the run's params, an ``XComArg`` of an
upstream task). ``stage_by_stage`` runs each stage (task ``run_<name>``) after Airflow saw the last
succeed; array sizes may then come from the leader's output: ``array_sizes`` is a callable run as the
task ``read_array_sizes`` after the leader, returning ``{array name: size}`` for the arrays whose
``size`` is ``None``.

**Dependencies.** Each array depends on the stage before it (or the one named by ``after``) with its
``dependency`` (``"N_TO_N"``: child *i* waits for child *i*; ``None``: the whole job); the aggregator
depends on every array. ``job_name`` is the task id unless a stage sets it. All at once, a stage's
submit task waits only for the submit tasks of the stages it depends on (their job ids), so stages
that do not depend on each other are submitted side by side; every watcher starts after the last
submission.

**Preflight.** ``preflight(params, aws_conn_id=...)`` runs as the task ``preflight`` before anything
is submitted; a ``ValueError`` it raises fails the run at once, without retries, naming what is wrong.

The returned :class:`FanOut` takes part in ``>>`` like a task group: ``register >> fan_out(...) >>
report``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from airflow.sdk.definitions._internal.mixins import DependencyMixin

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.definitions.edges import EdgeModifier
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    from batch_fanout.operators.batch import BatchFanoutOperator
    from batch_fanout.sensors.batch import BatchFanoutSensor

ALL_AT_ONCE = "all_at_once"
STAGE_BY_STAGE = "stage_by_stage"
Mode = Literal["all_at_once", "stage_by_stage"]
DEPENDENCIES = ("N_TO_N", None)


class Preflight(Protocol):
    """A check of a run's params before anything is submitted; raises ``ValueError`` naming the
    parameter at fault."""

    def __call__(self, params: Mapping[str, Any], *, aws_conn_id: str) -> None: ...


class Stage:
    """One plain Batch job of a fan-out: the leader, the aggregator, or a plain job between them.

    :param name: the stage's name; its tasks are ``submit_<name>`` / ``watch_<name>`` or ``run_<name>``.
    :param job_definition: the job definition (name, ``name:revision`` or ARN; templated).
    :param after: the stage(s) it depends on: by default the stage before it (for the aggregator,
        every stage between leader and aggregator).
    :param operator_arguments: further :class:`~batch_fanout.operators.batch.BatchFanoutOperator`
        arguments for this stage (``parameters``, ``container_overrides``, ``job_name`` ...).
    """

    dependency: str | None = None

    def __init__(
        self,
        name: str,
        job_definition: str,
        *,
        after: str | Sequence[str] | None = None,
        **operator_arguments: Any,
    ) -> None:
        if not name.isidentifier():
            raise ValueError(f"stage name {name!r} must be a Python identifier (it names the tasks)")
        self.name = name
        self.job_definition = job_definition
        self.after: list[str] | None = [after] if isinstance(after, str) else (list(after) if after else None)
        self.operator_arguments = operator_arguments


class Array(Stage):
    """An array job of a fan-out.

    :param name: the stage's name.
    :param job_definition: the job definition.
    :param size: the number of children (int, template or ``XComArg``); ``None`` in ``stage_by_stage``
        mode takes the size ``array_sizes`` returns for this name.
    :param dependency: ``"N_TO_N"`` or ``None`` (wait for the whole job), on the stage(s) it follows.
    :param after: the stage(s) it depends on; the stage before it by default.
    :param operator_arguments: further operator arguments (``tolerated_failures``, ...).
    """

    def __init__(
        self,
        name: str,
        job_definition: str,
        *,
        size: object = None,
        dependency: str | None = None,
        after: str | Sequence[str] | None = None,
        **operator_arguments: Any,
    ) -> None:
        super().__init__(name, job_definition, after=after, **operator_arguments)
        if dependency not in DEPENDENCIES:
            raise ValueError(f"array {name!r}: dependency must be 'N_TO_N' or None, got {dependency!r}")
        self.size = size
        self.dependency = dependency


@dataclass
class FanOut(DependencyMixin):
    """The tasks :func:`fan_out` created; usable with ``>>`` / ``<<`` like a task group.

    :param mode: the submission mode.
    :param submits: the submitting operator of each stage, by stage name.
    :param watchers: the sensor of each stage, by stage name (``all_at_once`` only).
    :param preflight: the preflight task, if any.
    :param sizes: the ``read_array_sizes`` task, if any.
    """

    mode: str
    submits: dict[str, BatchFanoutOperator]
    watchers: dict[str, BatchFanoutSensor] = field(default_factory=dict)
    preflight: BaseOperator | MappedOperator | None = None
    sizes: BaseOperator | MappedOperator | None = None

    @property
    def first(self) -> BaseOperator | MappedOperator:
        """The task that starts the fan-out."""
        return self.preflight or next(iter(self.submits.values()))

    @property
    def last(self) -> BaseOperator:
        """The task that ends it: the last watcher, or the last stage."""
        return list(self.watchers.values() or self.submits.values())[-1]

    @property
    def roots(self) -> Iterable[DependencyMixin]:
        return [self.first]

    @property
    def leaves(self) -> Iterable[DependencyMixin]:
        return [self.last]

    def set_upstream(
        self, other: DependencyMixin | Sequence[DependencyMixin], edge_modifier: EdgeModifier | None = None
    ) -> None:
        self.first.set_upstream(other, edge_modifier)

    def set_downstream(
        self, other: DependencyMixin | Sequence[DependencyMixin], edge_modifier: EdgeModifier | None = None
    ) -> None:
        self.last.set_downstream(other, edge_modifier)


def fan_out(
    *,
    leader: Stage,
    arrays: Sequence[Stage],
    job_queue: str,
    aggregator: Stage | None = None,
    mode: Mode = "all_at_once",
    array_sizes: Callable[[Context], Mapping[str, int]] | None = None,
    preflight: Preflight | None = None,
    aws_conn_id: str = "aws_default",
    poll_interval: float = 30,
    **common: Any,
) -> FanOut:
    """Create the tasks of a leader → arrays → aggregator pipeline in the DAG being defined.

    See the module docstring for the modes, dependencies and preflight.

    :param leader: the first job.
    :param arrays: one or more array jobs (:class:`Array`), and any plain jobs (:class:`Stage`)
        between leader and aggregator.
    :param job_queue: the Batch job queue of every job.
    :param aggregator: the last job, depending on every array.
    :param mode: ``"all_at_once"`` or ``"stage_by_stage"``.
    :param array_sizes: ``stage_by_stage`` only: called with the task context after the leader,
        returns the size of each array whose ``size`` is ``None``.
    :param preflight: called with the run's params and ``aws_conn_id`` before anything is submitted.
    :param aws_conn_id: the Airflow AWS connection of every task.
    :param poll_interval: seconds between polls of every task.
    :param common: further operator arguments for every stage (``pool``, ``results_uri``,
        ``container_overrides``, ``retries`` ...); a stage's own arguments win.
    :raises ValueError: naming the stage when the pipeline cannot be built as asked.
    """
    from batch_fanout.operators.batch import BatchFanoutOperator

    stages: list[Stage] = [leader, *arrays, *([aggregator] if aggregator else [])]
    _check(stages, arrays, mode, array_sizes)
    prefix = "submit" if mode == ALL_AT_ONCE else "run"
    shared: dict[str, Any] = {
        "job_queue": job_queue,
        "aws_conn_id": aws_conn_id,
        "poll_interval": poll_interval,
    }
    result = FanOut(mode=mode, submits={})
    if preflight is not None:
        result.preflight = _preflight_task(preflight, aws_conn_id)
    previous: BaseOperator | MappedOperator | None = result.preflight
    sizes: Any = None
    for stage in stages:
        arguments: dict[str, Any] = {**shared, **common, **stage.operator_arguments}
        if isinstance(stage, Array):
            arguments["array_size"] = stage.size if stage.size is not None else sizes[stage.name]
        if mode == ALL_AT_ONCE:
            arguments["wait_for_completion"] = False
            arguments["depends_on"] = _dependencies(stage, stages, result.submits, aggregator=aggregator)
        submit = BatchFanoutOperator(
            task_id=f"{prefix}_{stage.name}", job_definition=stage.job_definition, **arguments
        )
        if previous is not None and (mode == STAGE_BY_STAGE or stage is leader):
            # All at once, a stage waits only for the submissions whose job ids it depends on (the
            # XComArgs in its depends_on make them its upstream tasks), not for its siblings'.
            previous >> submit
        previous = submit
        result.submits[stage.name] = submit
        if stage is leader and any(s.size is None for s in arrays if isinstance(s, Array)):
            # Sizes from the leader's output (stage_by_stage only, checked above).
            unsized = [s.name for s in arrays if isinstance(s, Array) and s.size is None]
            sizes = _sizes_task(array_sizes, result, unsized)
            submit >> sizes
    if mode == ALL_AT_ONCE:
        _add_watchers(result, stages, shared)
    return result


def _check(
    stages: Sequence[Stage],
    arrays: Sequence[Stage],
    mode: str,
    array_sizes: Callable[..., object] | None,
) -> None:
    if mode not in (ALL_AT_ONCE, STAGE_BY_STAGE):
        raise ValueError(f"mode must be {ALL_AT_ONCE!r} or {STAGE_BY_STAGE!r}, got {mode!r}")
    if not arrays:
        raise ValueError(
            "a fan-out needs at least one stage (an Array, usually) between leader and aggregator"
        )
    names = [stage.name for stage in stages]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"stage names must differ; {repeated[0]!r} is used twice")
    for position, stage in enumerate(stages):
        unknown = [name for name in stage.after or [] if name not in names[:position]]
        if position == 0 and stage.after:
            raise ValueError(f"the leader {stage.name!r} runs first: it takes no after=")
        if unknown:
            raise ValueError(
                f"stage {stage.name!r}: after={unknown[0]!r} names no stage before it ({names[:position]})"
            )
        if not isinstance(stage, Array) or stage.size is not None:
            continue
        if mode == ALL_AT_ONCE:
            raise ValueError(
                f"array {stage.name!r} has no size: with mode {ALL_AT_ONCE!r} every job is submitted at "
                "the start, so give its size (an int, a template of the params or an XComArg)"
            )
        if array_sizes is None:
            raise ValueError(f"array {stage.name!r} has no size and no array_sizes callable gives it one")


def _dependencies(
    stage: Stage,
    stages: Sequence[Stage],
    submitted: Mapping[str, BatchFanoutOperator],
    *,
    aggregator: Stage | None,
) -> list[dict[str, Any]]:
    """``depends_on`` of a stage submitted at once: job ids from the upstream tasks' XCom."""
    position = [s.name for s in stages].index(stage.name)
    if position == 0:
        return []
    if stage.after is not None:
        upstream = stage.after
    elif stage is aggregator:
        upstream = [s.name for s in stages[1:position]]
    else:
        upstream = [stages[position - 1].name]
    return [{"job_id": submitted[name].output, "type": stage.dependency} for name in upstream]


def _add_watchers(result: FanOut, stages: Sequence[Stage], shared: Mapping[str, Any]) -> None:
    """One sensor per stage, after the last submission: the graph is in Batch as a whole before any
    sensor starts, and the sensors then follow the stages in order."""
    from batch_fanout.sensors.batch import BatchFanoutSensor

    submits = list(result.submits.values())
    previous: BaseOperator | None = None
    for stage in stages:
        submit = result.submits[stage.name]
        watcher = BatchFanoutSensor(
            task_id=f"watch_{stage.name}",
            job_id=submit.output,
            aws_conn_id=shared["aws_conn_id"],
            poke_interval=shared["poll_interval"],
            tolerated_failures=stage.operator_arguments.get("tolerated_failures", 0),
        )
        if previous is None:
            submits >> watcher
        else:
            previous >> watcher
        previous = watcher
        result.watchers[stage.name] = watcher


def _preflight_task(preflight: Preflight, aws_conn_id: str) -> BaseOperator | MappedOperator:
    from airflow.sdk import get_current_context, task

    @task(task_id="preflight")
    def run_preflight() -> None:
        """Check the run's params before anything is submitted: an error names the parameter."""
        from airflow.providers.common.compat.sdk import AirflowFailException

        params = get_current_context()["params"]
        try:
            preflight(params, aws_conn_id=aws_conn_id)
        except ValueError as error:
            # Bad input stays bad: fail the run now, before any job exists, and do not retry.
            raise AirflowFailException(f"preflight: {error}") from error

    called: PlainXComArg = run_preflight()  # type: ignore[assignment]  # @task's call is typed loosely
    return called.operator


def _sizes_task(
    array_sizes: Callable[[Context], Mapping[str, int]] | None, result: FanOut, names: Sequence[str]
) -> Any:
    from airflow.sdk import get_current_context, task

    assert array_sizes is not None  # checked by _check

    @task(task_id="read_array_sizes")
    def read_array_sizes() -> dict[str, int]:
        """The array sizes the leader planned: the upstream output that sizes the next stages."""
        sizes = {str(name): int(size) for name, size in array_sizes(get_current_context()).items()}
        missing = [name for name in names if name not in sizes]
        if missing:
            # A missing size would leave the array unsized, and it would run as one plain job.
            raise ValueError(f"array_sizes gave no size for array {missing[0]!r} (it gave {sorted(sizes)})")
        return sizes

    sizes: PlainXComArg = read_array_sizes()  # type: ignore[assignment]  # @task's call is typed loosely
    result.sizes = sizes.operator
    return sizes

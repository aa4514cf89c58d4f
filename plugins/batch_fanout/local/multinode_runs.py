"""How a multi-node parallel job runs on the engine, in AWS's order.

- **Gang placement.** The scheduler places the parent job like any job, but its spec's vCPUs and memory
  are the sum of its nodes', so it is placed only when one compute environment has room for every
  node, and that room is reserved at once. Each node's share passes to the node's attempt when it
  starts; a node that never starts gives its share back.
- **Main node first.** The main node starts first (STARTING); once its supervisor runs (RUNNING) the
  other nodes start, in the next engine round, with ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``.
- **The job follows its main node.** Each node ends SUCCEEDED or FAILED by its own exit. A node other
  than the main one ending changes nothing else (AWS's rule). When the main node ends, the other nodes
  are stopped (SIGTERM, SIGKILL after the grace) and the job's attempt ends with the main node's
  outcome: the job succeeds, fails, or (by its ``retryStrategy``) is retried as a whole once every
  node has ended, each node then starting a new attempt of its own.

The scheduler calls back ``node_attempt_ended`` and ``job_ended``; the engine calls ``place`` for a
placed parent, ``adopted`` when a node's supervisor runs, ``ready`` each round and ``expand`` on
TerminateJob. Everything runs under the engine's lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batch_fanout.local.jobs import TERMINAL_STATES, TIMEOUT_REASON, Job, now_ms, retry_decision
from batch_fanout.local.multinode import is_multinode_parent, main_index

if TYPE_CHECKING:
    from batch_fanout.local.engine import Engine, Launch

MAIN_EXITED_REASON = "Stopped: the job's main node exited"
WAITING = ("SUBMITTED", "PENDING", "RUNNABLE")


class MultiNodeRuns:
    """The running multi-node jobs of an engine.

    :param engine: the engine whose attempts run the nodes
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.scheduler = engine.scheduler
        # Parent id -> (compute environment, nodes placed with the job but not started yet).
        self._held: dict[str, tuple[str, list[Job]]] = {}
        self._ready: list[str] = []  # parents whose main node runs: their held nodes start next round
        # Parent id -> the main node's outcome, kept until the job's other nodes have ended (a retry).
        self._deferred: dict[str, tuple[Any, ...]] = {}
        self.scheduler.node_attempt_ended = self.node_attempt_ended
        self.scheduler.job_ended = self.job_ended

    # ---- starting --------------------------------------------------------------------------

    def place(self, parent: Job, environment: str) -> Launch | None:
        """The scheduler placed ``parent`` (reserving every node's capacity): start its main node."""
        main = parent.children[main_index(parent)]
        others = [node for node in parent.children if node is not main]
        for node in parent.children:
            node.stopped_at = None
            node.status_reason = None
        self._held[parent.job_id] = (environment, others)
        for node in others:
            self.scheduler.set_status(node, "RUNNABLE")
        self.scheduler.set_status(main, "STARTING")
        return self.engine._prepare(main, environment)

    def adopted(self, node: Job) -> None:
        """A node's supervisor runs: once the main node does, the job runs and its other nodes start.

        A node adopted after a restart whose main node ended meanwhile is stopped, as it would have been.
        """
        parent = node.parent
        if parent is None:
            return
        main = parent.children[main_index(parent)]
        if node is not main:
            if main.status in TERMINAL_STATES:
                self._stop(node)
            return
        if parent.status != "STARTING":
            return
        parent.started_at = parent.started_at or node.started_at or now_ms()
        self.scheduler.set_status(parent, "RUNNING")
        if parent.job_id in self._held and not parent.is_terminated:  # a terminated job starts no more
            self._ready.append(parent.job_id)
            self.engine.wake()

    def ready(self) -> list[Launch]:
        """The launches of the nodes whose main node runs (called each engine round)."""
        launches: list[Launch] = []
        ready, self._ready = self._ready, []
        for parent_id in ready:
            held = self._held.pop(parent_id, None)
            if held is None:
                continue  # the main node ended first: its nodes were released
            environment, nodes = held
            for node in nodes:
                if node.status != "RUNNABLE":  # cancelled or terminated on its own meanwhile
                    self.scheduler.release(environment, *self.scheduler.requirements(node))
                    continue
                self.scheduler.set_status(node, "STARTING")
                launch = self.engine._prepare(node, environment)
                if launch is not None:
                    launches.append(launch)
        return launches

    # ---- ending ----------------------------------------------------------------------------

    def node_attempt_ended(  # noqa: PLR0917 - the arguments of Scheduler.finish_attempt
        self,
        node: Job,
        record: dict[str, Any],
        exit_code: int | None,
        container_reason: str | None,
        status_reason: str,
        succeeded: bool,
    ) -> None:
        """A node's attempt ended: the node ends; if it is the main node, so does the job's attempt."""
        parent = node.parent
        assert parent is not None
        node.stopped_at = record["stoppedAt"]
        self.scheduler.set_status(node, "SUCCEEDED" if succeeded else "FAILED", status_reason)
        if node.node_index == main_index(parent) and not parent.is_terminal:
            self._stop_others(parent)
            outcome = (record, exit_code, container_reason, status_reason, succeeded)
            if self._live(parent) and self._will_retry(parent, outcome):
                self._deferred[parent.job_id] = outcome  # a new attempt waits for every node to end
            else:
                self._end_attempt(parent, outcome)
        elif parent.job_id in self._deferred and not self._live(parent):
            self._end_attempt(parent, self._deferred.pop(parent.job_id))

    def job_ended(self, job: Job) -> None:
        """A job reached a terminal state: a multi-node job's nodes that never started fail with it."""
        if not is_multinode_parent(job):
            return
        self._release_held(job, job.status_reason or "")
        for node in job.children:
            if node.status in WAITING and node.job_id not in self.engine._attempts:
                node.is_cancelled, node.is_terminated = job.is_cancelled, job.is_terminated
                self.scheduler.set_status(node, "FAILED", job.status_reason)

    def owner(self, job: Job) -> Job:
        """What CancelJob and TerminateJob given ``job`` act on: for a node that has not started, its
        job (a node waits only while its job does), else ``job`` itself."""
        parent = job.parent
        if job.node_index is None or parent is None:
            return job
        started = job.job_id in self.engine._attempts or job.status not in WAITING
        return job if started else parent

    def expand(self, targets: list[Job]) -> list[Job]:
        """TerminateJob's started jobs, with a multi-node job replaced by its started nodes."""
        expanded: list[Job] = []
        for target in targets:
            if not is_multinode_parent(target):
                expanded.append(target)
                continue
            for node in target.children:
                if node.job_id in self.engine._attempts:
                    node.is_terminated = True
                    self.scheduler.mark(node)
                    expanded.append(node)
        return expanded

    # ---- helpers ---------------------------------------------------------------------------

    def _end_attempt(self, parent: Job, outcome: tuple[Any, ...]) -> None:
        """The job's attempt ends with its main node's outcome; a job to retry shows its nodes
        SUBMITTED again while it waits for its next placement."""
        self.scheduler.finish_attempt(parent, *outcome)
        if parent.status == "RUNNABLE":
            for node in parent.children:
                node.stopped_at = node.status_reason = None  # the last attempt's are in its attempts
                self.scheduler.set_status(node, "SUBMITTED")

    def _live(self, parent: Job) -> bool:
        return any(node.job_id in self.engine._attempts for node in parent.children)

    @staticmethod
    def _will_retry(parent: Job, outcome: tuple[Any, ...]) -> bool:
        """Whether ``Scheduler.finish_attempt`` would retry the job after this outcome of its main node."""
        record, exit_code, container_reason, status_reason, succeeded = outcome
        if succeeded or status_reason == TIMEOUT_REASON:
            return False
        parent.attempts.append(record)  # the decision counts the attempt that just ended
        try:
            return retry_decision(parent, exit_code, container_reason, status_reason)
        finally:
            parent.attempts.pop()

    def _release_held(self, parent: Job, reason: str) -> None:
        held = self._held.pop(parent.job_id, None)
        if held is None:
            return
        environment, nodes = held
        for node in nodes:
            self.scheduler.release(environment, *self.scheduler.requirements(node))
            if node.status not in TERMINAL_STATES:
                self.scheduler.set_status(node, "FAILED", reason)

    def _stop_others(self, parent: Job) -> None:
        """The main node ended: nodes not started never will; started ones are stopped."""
        self._release_held(parent, MAIN_EXITED_REASON)
        for node in parent.children:
            self._stop(node)

    def _stop(self, node: Job) -> None:
        attempt = self.engine._attempts.get(node.job_id)
        if attempt is not None:
            self.engine.stop_attempt(attempt, "terminate", MAIN_EXITED_REASON)

    # ---- after a restart -------------------------------------------------------------------

    @staticmethod
    def recovery_order(job: Job) -> int:
        """Main nodes are recovered last, so that one that ended while the endpoint was down finds the
        other nodes of its job adopted (and stops them, and waits for them before a retry)."""
        parent = job.parent
        return int(parent is not None and job.node_index is not None and job.node_index == main_index(parent))

    def recover(self) -> None:
        """After the attempts are recovered: the held nodes of the jobs whose main node still runs are
        held again (their capacity reserved), and a job whose main node ended while the endpoint was
        down ends its attempt now, or once its other nodes have."""
        for parent in self.scheduler.top_level_jobs:
            if not is_multinode_parent(parent) or parent.status not in ("STARTING", "RUNNING"):
                continue
            main = parent.children[main_index(parent)]
            attempt = self.engine._attempts.get(main.job_id)
            if attempt is not None:
                waiting = [node for node in parent.children if node.status == "RUNNABLE"]
                for node in waiting:
                    self.scheduler.reserve(attempt.environment, *self.scheduler.requirements(node))
                if waiting:
                    self._held[parent.job_id] = (attempt.environment, waiting)
                    if main.status == "RUNNING":
                        self._ready.append(parent.job_id)
            elif main.status in TERMINAL_STATES and parent.job_id not in self._deferred and main.attempts:
                outcome = (
                    main.attempts[-1],
                    main.exit_code,
                    main.container_reason,
                    main.status_reason or "",
                    main.status == "SUCCEEDED",
                )
                if self._live(parent):
                    self._deferred[parent.job_id] = outcome
                else:
                    self._end_attempt(parent, outcome)

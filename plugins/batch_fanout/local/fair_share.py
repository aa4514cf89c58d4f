"""Scheduling policies and fair-share scheduling: the policy operations, AWS's checks, and the dispatch
order of a fair-share job queue.

A job queue with a ``schedulingPolicyArn`` dispatches by share: the share whose usage times its
``weightFactor`` is lowest goes first (a lower weight gets more: 0.125 gets eight times what 1 gets, as
AWS documents), then, within a share, the higher ``schedulingPriority``, then submission order.
``computeReservation`` holds back ``(computeReservation / 100) ** active shares`` of the queue's
maximum vCPUs for shares that run nothing yet. Usage is the vCPUs a share's started jobs hold now plus,
the vCPU-seconds its attempts that ended within the decay window (``shareDecaySeconds``; 0 means AWS's
default minimum of 600 s) of the scheduling clock (``clock``) used, each weighted down linearly with the age of its end, divided
by the window. SubmitJob refuses a share that would be the 501st active in a queue (``ActiveShares``).
"""

from __future__ import annotations

import collections
import heapq
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from batch_fanout.local.errors import client_error
from batch_fanout.local.registry import arn
from batch_fanout.local.validation import check_name, paged

if TYPE_CHECKING:
    from batch_fanout.local.clock import SchedulingClock
    from batch_fanout.local.jobs import Job
    from batch_fanout.local.registry import Registry

Document = dict[str, Any]
Handler = Callable[[dict[str, Any], str], dict[str, Any]]

MAX_SHARE_DECAY_SECONDS = 604_800
MAX_COMPUTE_RESERVATION = 99
MAX_SHARE_DISTRIBUTION = 500
MAX_ACTIVE_SHARES = 500  # AWS: no more than 500 share identifiers active in a job queue
MIN_WEIGHT, MAX_WEIGHT = 0.0001, 999.9999
MAX_SCHEDULING_PRIORITY = 9999
MAX_DESCRIBE_POLICIES = 100
MAX_LIST_POLICIES = 1000
TOP_SHARES = 20
FRONT = 100  # GetJobQueueSnapshot lists the first 100 RUNNABLE jobs
SHARE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}\*?$")


# ---- AWS's checks ----------------------------------------------------------------------------


def check_fairshare_policy(policy: Document | None) -> Document:
    """CreateSchedulingPolicy's and UpdateSchedulingPolicy's checks of ``fairsharePolicy``."""
    policy = dict(policy or {})
    decay = policy.get("shareDecaySeconds")
    if decay is not None and not 0 <= decay <= MAX_SHARE_DECAY_SECONDS:
        raise client_error(
            f"fairsharePolicy.shareDecaySeconds must be between 0 and {MAX_SHARE_DECAY_SECONDS}, got {decay}"
        )
    reservation = policy.get("computeReservation")
    if reservation is not None and not 0 <= reservation <= MAX_COMPUTE_RESERVATION:
        raise client_error(
            f"fairsharePolicy.computeReservation must be between 0 and {MAX_COMPUTE_RESERVATION}, "
            f"got {reservation}"
        )
    shares = policy.get("shareDistribution") or []
    if len(shares) > MAX_SHARE_DISTRIBUTION:
        raise client_error(
            f"fairsharePolicy.shareDistribution has {len(shares)} entries; at most "
            f"{MAX_SHARE_DISTRIBUTION} are allowed"
        )
    identifiers: list[str] = []
    for position, share in enumerate(shares):
        identifier = share["shareIdentifier"]
        where = f"fairsharePolicy.shareDistribution[{position}]"
        if not SHARE_PATTERN.match(identifier):
            raise client_error(
                f"{where}.shareIdentifier {identifier!r} must be 1 to 255 letters, digits, hyphens or "
                "underscores, optionally followed by *"
            )
        weight = share.get("weightFactor")
        if weight is not None and not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise client_error(
                f"{where}.weightFactor must be between {MIN_WEIGHT} and {MAX_WEIGHT}, got {weight}"
            )
        for other in identifiers:
            if _overlap(identifier, other):
                raise client_error(
                    f"{where}.shareIdentifier {identifier!r} overlaps {other!r}: the share identifiers of "
                    "a fair-share policy cannot overlap"
                )
        identifiers.append(identifier)
    return policy


def _overlap(first: str, second: str) -> bool:
    """Whether two share identifiers (``*`` at the end: a prefix) can name the same share."""
    if first == second:
        return True
    for prefix, other in ((first, second), (second, first)):
        if prefix.endswith("*") and other.rstrip("*").startswith(prefix[:-1]):
            return True
    return False


class ActiveShares:
    """The share identifiers active in each fair-share queue (those of its jobs that have not finished),
    for AWS's limit of ``MAX_ACTIVE_SHARES`` per queue, checked at SubmitJob.

    The submitted jobs are read from ``jobs`` (the scheduler's top-level jobs, a list that only grows)
    as far as they have been seen; a share's jobs are kept oldest first and the finished ones dropped
    from the front as jobs are added, so that a check costs one look at each share only when a new share
    meets a queue that already has ``MAX_ACTIVE_SHARES``.

    :param jobs: every top-level job, in submission order (after a restart too: the first check reads
        them all)
    """

    def __init__(self, jobs: Callable[[], list[Job]]) -> None:
        self.jobs = jobs
        self._seen = 0
        self._live: dict[str, dict[str, collections.deque[Job]]] = {}  # queue ARN -> share -> jobs

    def _catch_up(self) -> None:
        jobs = self.jobs()
        for job in jobs[self._seen :]:
            share = share_of(job)
            if share and not job.is_terminal:
                queue = self._live.setdefault(job.queue_arn, {}).setdefault(share, collections.deque())
                while queue and queue[0].is_terminal:
                    queue.popleft()
                queue.append(job)
        self._seen = len(jobs)

    def check(self, queue: Document, share: str) -> None:
        """Refuse a job of ``share`` that would be one share identifier too many in ``queue``."""
        self._catch_up()
        shares = self._live.get(queue["jobQueueArn"], {})
        if share in shares or len(shares) < MAX_ACTIVE_SHARES:
            return  # a listed share may have finished since: it becomes active again with this job
        for name, jobs in list(shares.items()):
            unfinished = [job for job in jobs if not job.is_terminal]
            if unfinished:
                shares[name] = collections.deque(unfinished)  # the next look is shorter
            else:
                del shares[name]
        if len(shares) >= MAX_ACTIVE_SHARES:
            raise client_error(
                f"Job queue {queue['jobQueueName']} already has {len(shares)} active share identifiers "
                f"(shares of jobs that have not finished): there can be no more than {MAX_ACTIVE_SHARES} "
                f"share identifiers active in a job queue, so shareIdentifier {share!r} is refused until one "
                "of them has no unfinished job"
            )


def check_submit_share(params: Document, queue: Document, active: ActiveShares) -> None:
    """SubmitJob's rules on ``shareIdentifier`` and ``schedulingPriorityOverride`` for ``queue``.

    :param active: the share identifiers active in each queue
    """
    share = params.get("shareIdentifier")
    name = queue["jobQueueName"]
    if queue.get("schedulingPolicyArn"):
        if not share:
            raise client_error(
                f"Job queue {name} has a fair-share scheduling policy: shareIdentifier is required"
            )
        if not SHARE_PATTERN.match(share) or share.endswith("*"):
            raise client_error(
                f"Invalid shareIdentifier {share!r}: it must be 1 to 255 letters, digits, hyphens or underscores"
            )
        active.check(queue, share)
    elif share:
        raise client_error(
            f"Job queue {name} has no scheduling policy (it is FIFO): shareIdentifier must not be given"
        )
    check_scheduling_priority(params.get("schedulingPriorityOverride"), "schedulingPriorityOverride")


def check_scheduling_priority(priority: int | None, what: str) -> None:
    if priority is not None and not 0 <= priority <= MAX_SCHEDULING_PRIORITY:
        raise client_error(f"{what} must be between 0 and {MAX_SCHEDULING_PRIORITY}, got {priority}")


def check_queue_policy(registry: Registry, queue: Document | None, params: Document) -> str | None:
    """CreateJobQueue's and UpdateJobQueue's rules on ``schedulingPolicyArn``; returns the ARN to keep.

    AWS: a queue created without a policy is FIFO and cannot get one later; a fair-share queue's policy
    can be replaced but not removed.
    """
    if "schedulingPolicyArn" not in params:
        return queue.get("schedulingPolicyArn") if queue else None
    wanted = params["schedulingPolicyArn"]
    if queue is not None:
        name = queue["jobQueueName"]
        if not queue.get("schedulingPolicyArn"):
            raise client_error(
                f"Job queue {name} was created without a scheduling policy (FIFO); it cannot get one later"
            )
        if not wanted:
            raise client_error(f"Job queue {name}: its scheduling policy can be replaced but not removed")
    policy = registry.scheduling_policies.find(wanted) if wanted else None
    if policy is None or not wanted.startswith("arn:"):
        raise client_error(f"Scheduling policy {wanted} not found")
    return str(policy["arn"])


# ---- the policy operations -------------------------------------------------------------------


class SchedulingPoliciesApi:
    """CreateSchedulingPolicy, DescribeSchedulingPolicies, ListSchedulingPolicies,
    UpdateSchedulingPolicy and DeleteSchedulingPolicy.

    :param registry: where the policies are kept
    :param lock: the engine's lock, held while a policy is read or changed
    :param copy: a deep copy of a response, taken under the lock
    """

    def __init__(self, registry: Registry, lock: Any, copy: Callable[[Document], Document]) -> None:
        self.registry = registry
        self.lock = lock
        self.copy = copy
        self.handlers: dict[str, Handler] = {
            "CreateSchedulingPolicy": self.create,
            "DescribeSchedulingPolicies": self.describe,
            "ListSchedulingPolicies": self.list,
            "UpdateSchedulingPolicy": self.update,
            "DeleteSchedulingPolicy": self.delete,
        }

    @staticmethod
    def _no_quota_share(params: Document) -> None:
        if params.get("quotaSharePolicy"):
            raise client_error("quotaSharePolicy is not supported by the local endpoint; use fairsharePolicy")

    def create(self, params: Document, region: str) -> Document:
        name = params["name"]
        check_name(name, "scheduling policy name")
        self._no_quota_share(params)
        policy = check_fairshare_policy(params.get("fairsharePolicy"))
        policies = self.registry.scheduling_policies
        with self.lock:
            if policies.find(name) is not None:
                raise client_error(f"Scheduling policy {name} already exists")
            document: Document = {
                "name": name,
                "arn": arn(region, f"scheduling-policy/{name}"),
                "fairsharePolicy": policy,
                "tags": params.get("tags") or {},
            }
            policies.save(document)
        return {"name": name, "arn": document["arn"]}

    def describe(self, params: Document, region: str) -> Document:
        references = params["arns"]
        if len(references) > MAX_DESCRIBE_POLICIES:
            raise client_error(f"arns takes at most {MAX_DESCRIBE_POLICIES} entries, got {len(references)}")
        with self.lock:
            policies = self.registry.scheduling_policies
            found = [policy for reference in references if (policy := policies.find(reference))]
            return self.copy({"schedulingPolicies": found})

    def list(self, params: Document, region: str) -> Document:
        with self.lock:
            listed = [{"arn": policy["arn"]} for policy in self.registry.scheduling_policies.all()]
        return paged("schedulingPolicies", listed, params, MAX_LIST_POLICIES)

    def update(self, params: Document, region: str) -> Document:
        self._no_quota_share(params)
        policy = (
            check_fairshare_policy(params.get("fairsharePolicy")) if "fairsharePolicy" in params else None
        )
        with self.lock:
            document = self.registry.scheduling_policies.get(params["arn"], client_error)
            if policy is not None:
                # The policy is replaced whole, as AWS does; queues using it see it on the next round.
                document["fairsharePolicy"] = policy
                self.registry.scheduling_policies.save(document)
        return {}

    def delete(self, params: Document, region: str) -> Document:
        with self.lock:
            document = self.registry.scheduling_policies.get(params["arn"], client_error)
            users = [
                queue["jobQueueName"]
                for queue in self.registry.job_queues.all()
                if queue.get("schedulingPolicyArn") == document["arn"]
            ]
            if users:
                raise client_error(
                    f"Cannot delete scheduling policy {document['name']}: job queue(s) {', '.join(users)} use it"
                )
            self.registry.scheduling_policies.delete(document)
        return {}


# ---- usage and dispatch ----------------------------------------------------------------------


def share_of(job: Job) -> str:
    return str(job.spec.get("shareIdentifier") or "")


def weight_of(policy: Document, share: str) -> float:
    """The share's ``weightFactor``: an exact entry, else a ``prefix*`` entry, else 1.0 (AWS's rule)."""
    prefixed: float | None = None
    for entry in policy.get("shareDistribution") or []:
        identifier = entry["shareIdentifier"]
        weight = float(entry.get("weightFactor", 1.0))
        if identifier == share:
            return weight
        if identifier.endswith("*") and share.startswith(identifier[:-1]):
            prefixed = weight
    return 1.0 if prefixed is None else prefixed


DEFAULT_DECAY_SECONDS = 600


def decay_window(share_decay_seconds: int) -> int:
    """The decay window of a policy's ``shareDecaySeconds``: 0 is AWS's default minimum of 600 s."""
    return share_decay_seconds if share_decay_seconds > 0 else DEFAULT_DECAY_SECONDS


class ShareUsage:
    """The vCPUs each share of each queue holds now, and what its finished attempts used (for decay).

    Finished use is kept per second of the scheduling clock in which attempts ended (vCPU-milliseconds
    within the window), so its cost is bounded by the seconds with ends in them, not by the attempts.

    :param clock: the scheduling clock (milliseconds)
    :param decay_of: the ``shareDecaySeconds`` of a queue's policy now, by queue ARN
    """

    def __init__(self, clock: SchedulingClock, decay_of: Callable[[str], int]) -> None:
        self.clock = clock
        self.decay_of = decay_of
        self.running: dict[tuple[str, str], float] = {}
        self._started: dict[str, int] = {}  # job id -> when its attempt started (scheduling clock)
        # (queue ARN, share) -> [second of the end, vCPU-milliseconds], oldest first
        self._history: dict[tuple[str, str], collections.deque[list[float]]] = {}

    def started(self, job: Job) -> None:
        if job.job_id in self._started:
            return
        self._started[job.job_id] = self.clock.now_ms()
        key = (job.queue_arn, share_of(job))
        self.running[key] = self.running.get(key, 0.0) + float(job.spec["vcpus"])

    def stopped(self, job: Job) -> None:
        start = self._started.pop(job.job_id, None)
        if start is None:
            return
        key = (job.queue_arn, share_of(job))
        vcpus = float(job.spec["vcpus"])
        left = self.running.get(key, 0.0) - vcpus
        if left > 1e-9:
            self.running[key] = left
        else:
            self.running.pop(key, None)
        window = decay_window(self.decay_of(job.queue_arn)) * 1000
        now = self.clock.now_ms()
        used = vcpus * (now - max(start, now - window))
        history = self._history.setdefault(key, collections.deque())
        second = now // 1000
        if history and history[-1][0] == second:
            history[-1][1] += used
        else:
            history.append([second, used])

    def usage(self, queue_arn: str, share: str, decay_seconds: int) -> float:
        """vCPUs held now, plus the vCPU-seconds of attempts that ended within the last
        ``decay_seconds``, each weighted ``1 - age / window`` (recent work weighs more), per second of it."""
        current = self.running.get((queue_arn, share), 0.0)
        history = self._history.get((queue_arn, share))
        if not history:
            return current
        now = self.clock.now_ms()
        window = decay_window(decay_seconds) * 1000
        while history and history[0][0] * 1000 <= now - window:
            history.popleft()
        past = sum(used * (1 - (now - second * 1000) / window) for second, used in history)
        return current + past / window

    def shares_in_use(self, queue_arn: str) -> list[tuple[str, float]]:
        """The shares of a queue that hold vCPUs now, most first."""
        return sorted(
            (
                (share, vcpus)
                for (queue, share), vcpus in self.running.items()
                if queue == queue_arn and vcpus
            ),
            key=lambda item: -item[1],
        )


class FairShareQueue:
    """The RUNNABLE jobs of one fair-share queue: a heap per share by (-priority, submission order).

    It stands where a FIFO queue's deque stands in the scheduler: ``append`` adds a job, iterating
    yields the dispatch order (what GetJobQueueSnapshot shows), and ``take`` places jobs.

    :param queue_arn: the queue
    :param policy: returns the queue's fair-share policy now (it can be updated)
    :param usage: the shares' usage
    """

    def __init__(self, queue_arn: str, policy: Callable[[], Document], usage: ShareUsage) -> None:
        self.queue_arn = queue_arn
        self.policy = policy
        self.usage = usage
        self.heaps: dict[str, list[tuple[int, int, str, Job]]] = {}

    def append(self, job: Job) -> None:
        priority = int(job.spec.get("schedulingPriority") or 0)
        heapq.heappush(self.heaps.setdefault(share_of(job), []), (-priority, job.seq, job.job_id, job))

    def _top(self, share: str) -> Job | None:
        heap = self.heaps.get(share)
        while heap and heap[0][3].status != "RUNNABLE":
            heapq.heappop(heap)
        if not heap:
            self.heaps.pop(share, None)
            return None
        return heap[0][3]

    def __bool__(self) -> bool:
        return any(self._top(share) is not None for share in list(self.heaps))

    def _ranked(self) -> list[tuple[float, int, str]]:
        """Shares with RUNNABLE jobs, best first: usage times weight, then the older top job."""
        policy = self.policy()
        decay = int(policy.get("shareDecaySeconds") or 0)
        ranked = []
        for share in list(self.heaps):
            top = self._top(share)
            if top is None:
                continue
            used = self.usage.usage(self.queue_arn, share, decay)
            ranked.append((used * weight_of(policy, share), top.seq, share))
        ranked.sort()
        return ranked

    def take(self, fits: Callable[[Job], bool], capacity: float, used: float) -> Job | None:
        """The next job to place: the best share whose top job ``fits`` and that the compute reservation
        lets in; ``None`` when the best allowed share's job does not fit (the queue waits, as FIFO does).

        :param fits: whether a job fits in one of the queue's compute environments now
        :param capacity: the vCPUs of the queue's compute environments
        :param used: the vCPUs the queue's started jobs hold
        """
        policy = self.policy()
        reservation = int(policy.get("computeReservation") or 0)
        active = {share for share, _ in self.usage.shares_in_use(self.queue_arn)}
        held_back = (reservation / 100) ** len(active) if reservation and active else 0.0
        for _, _, share in self._ranked():
            job = self._top(share)
            assert job is not None
            if share in active and used + float(job.spec["vcpus"]) > capacity * (1 - held_back) + 1e-9:
                continue  # that part of the capacity is kept for shares that run nothing yet
            if not fits(job):
                return None
            heapq.heappop(self.heaps[share])
            return job
        return None

    def head(self) -> Job | None:
        """The job at the head of the queue (first in dispatch order)."""
        ranked = self._ranked()
        return self._top(ranked[0][2]) if ranked else None

    def __iter__(self) -> Iterator[Job]:
        """The first ``FRONT`` RUNNABLE jobs of each share, in dispatch order, as if each were placed in
        turn (the reservation aside): enough for GetJobQueueSnapshot's first 100, without sorting every
        share's heap."""
        extra: dict[str, float] = collections.defaultdict(float)
        queues = {
            share: heapq.nsmallest(FRONT, (entry for entry in heap if entry[3].status == "RUNNABLE"))
            for share, heap in self.heaps.items()
        }
        positions = dict.fromkeys(queues, 0)
        policy = self.policy()
        decay = int(policy.get("shareDecaySeconds") or 0)
        base = {share: self.usage.usage(self.queue_arn, share, decay) for share in queues}
        while True:
            best: tuple[float, int, str] | None = None
            for share, entries in queues.items():
                while positions[share] < len(entries) and entries[positions[share]][3].status != "RUNNABLE":
                    positions[share] += 1
                if positions[share] == len(entries):
                    continue
                job = entries[positions[share]][3]
                key = ((base[share] + extra[share]) * weight_of(policy, share), job.seq, share)
                if best is None or key < best:
                    best = key
            if best is None:
                return
            share = best[2]
            job = queues[share][positions[share]][3]
            positions[share] += 1
            extra[share] += float(job.spec["vcpus"])
            yield job

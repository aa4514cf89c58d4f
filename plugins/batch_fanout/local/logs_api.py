"""The CloudWatch Logs calls that read job logs: GetLogEvents, FilterLogEvents, DescribeLogStreams.

Only the log group ``/aws/batch/job`` exists; its streams are the attempts of the jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batch_fanout.local import ACCOUNT_ID, LOG_GROUP_NAME
from batch_fanout.local.engine import Engine
from batch_fanout.local.errors import ApiError
from batch_fanout.local.logfile import read_log_events

MAX_EVENTS = 10_000
MAX_STREAMS_PAGE = 50

Handler = Callable[[dict[str, Any], str], dict[str, Any]]


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidParameterException", message)


def _not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFoundException", message)


class LogsApi:
    """CloudWatch Logs, read-only, over the job log streams of ``engine``.

    :param engine: the engine that knows the streams
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.handlers: dict[str, Handler] = {
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
            "DescribeLogStreams": self.describe_log_streams,
            "DescribeLogGroups": self.describe_log_groups,
        }

    def _check_group(self, params: dict[str, Any]) -> None:
        group = params.get("logGroupName") or params.get("logGroupIdentifier")
        if group is None:
            raise _invalid("logGroupName is required")
        if group.split(":log-group:", 1)[-1].removesuffix(":*") != LOG_GROUP_NAME:
            raise _not_found(f"The specified log group does not exist: {group}")

    def _stream_events(self, stream: str) -> list[dict[str, Any]]:
        path = self.engine.log_file(stream)
        if path is None:
            raise _not_found(f"The specified log stream does not exist: {stream}")
        return read_log_events(path)

    def get_log_events(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        self._check_group(params)
        events = self._stream_events(params["logStreamName"])
        start, end = params.get("startTime"), params.get("endTime")
        if start is not None or end is not None:
            events = [
                event
                for event in events
                if (start is None or event["timestamp"] >= start)
                and (end is None or event["timestamp"] < end)
            ]
        limit = params.get("limit") or MAX_EVENTS
        if not 1 <= limit <= MAX_EVENTS:
            raise _invalid(f"limit must be between 1 and {MAX_EVENTS}, got {limit}")
        token = params.get("nextToken")
        if token:
            direction, _, position_text = token.partition("/")
            try:
                position = int(position_text)
            except ValueError:
                raise _invalid(f"The specified nextToken is invalid: {token}") from None
            if direction not in ("f", "b") or not 0 <= position <= len(events):
                raise _invalid(f"The specified nextToken is invalid: {token}")
            if direction == "f":
                first, last = position, min(len(events), position + limit)
            else:
                first, last = max(0, position - limit), position
        elif params.get("startFromHead"):
            first, last = 0, min(len(events), limit)
        else:
            first, last = max(0, len(events) - limit), len(events)
        page = [dict(event, ingestionTime=event["timestamp"]) for event in events[first:last]]
        return {"events": page, "nextForwardToken": f"f/{last}", "nextBackwardToken": f"b/{first}"}

    def _matching_streams(self, params: dict[str, Any]) -> list[tuple[str, int]]:
        streams = self.engine.stream_names()
        names = params.get("logStreamNames")
        prefix = params.get("logStreamNamePrefix")
        if names:
            wanted = set(names)
            streams = [item for item in streams if item[0] in wanted]
        if prefix:
            streams = [item for item in streams if item[0].startswith(prefix)]
        return streams

    def filter_log_events(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        self._check_group(params)
        if params.get("logStreamNames") and params.get("logStreamNamePrefix"):
            raise _invalid("logStreamNames and logStreamNamePrefix cannot both be given")
        terms = [term.strip('"') for term in (params.get("filterPattern") or "").split() if term]
        start, end = params.get("startTime"), params.get("endTime")
        collected: list[dict[str, Any]] = []
        for name, _ in sorted(self._matching_streams(params)):
            path = self.engine.log_file(name)
            if path is None:
                continue
            attempt_id = path.name.removesuffix(".log")
            for number, event in enumerate(read_log_events(path)):
                if start is not None and event["timestamp"] < start:
                    continue
                if end is not None and event["timestamp"] > end:
                    continue
                if terms and not all(term in event["message"] for term in terms):
                    continue
                collected.append(
                    {
                        "logStreamName": name,
                        "timestamp": event["timestamp"],
                        "message": event["message"],
                        "ingestionTime": event["timestamp"],
                        "eventId": f"{attempt_id}-{number}",
                    }
                )
        collected.sort(key=lambda event: event["timestamp"])
        limit = params.get("limit") or MAX_EVENTS
        offset = 0
        if params.get("nextToken"):
            try:
                offset = int(params["nextToken"])
            except ValueError:
                raise _invalid(f"The specified nextToken is invalid: {params['nextToken']}") from None
        page = collected[offset : offset + limit]
        response: dict[str, Any] = {"events": page, "searchedLogStreams": []}
        if offset + limit < len(collected):
            response["nextToken"] = str(offset + limit)
        return response

    def describe_log_streams(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        self._check_group(params)
        streams = self._matching_streams(params)
        if params.get("orderBy") == "LastEventTime":
            if params.get("logStreamNamePrefix"):
                raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
            streams.sort(key=lambda item: item[1])
        else:
            streams.sort()
        if params.get("descending"):
            streams.reverse()
        limit = params.get("limit") or MAX_STREAMS_PAGE
        offset = int(params["nextToken"]) if str(params.get("nextToken", "")).isdigit() else 0
        page = streams[offset : offset + limit]
        response: dict[str, Any] = {
            "logStreams": [
                {
                    "logStreamName": name,
                    "creationTime": created,
                    "arn": f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{LOG_GROUP_NAME}:log-stream:{name}",
                    "storedBytes": 0,
                }
                for name, created in page
            ]
        }
        if offset + limit < len(streams):
            response["nextToken"] = str(offset + limit)
        return response

    def describe_log_groups(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        prefix = params.get("logGroupNamePrefix") or ""
        groups = []
        if LOG_GROUP_NAME.startswith(prefix):
            groups.append(
                {
                    "logGroupName": LOG_GROUP_NAME,
                    "arn": f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{LOG_GROUP_NAME}:*",
                    "creationTime": 0,
                    "storedBytes": 0,
                }
            )
        return {"logGroups": groups}

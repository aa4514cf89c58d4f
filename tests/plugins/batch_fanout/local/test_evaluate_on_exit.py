"""``evaluateOnExit`` patterns as AWS documents them, over HTTP with boto3: what AWS refuses is refused
with a message naming the field and the fault, in RegisterJobDefinition and in SubmitJob; what AWS
allows (the ``*`` forms, any case of the action) is accepted and decides retries as documented."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import register_test_definition

Submit = Callable[..., str]
WaitStatus = Callable[..., dict[str, Any]]

LONGEST = 512

# Valid by the API reference: an exit code of numbers only, a reason or status reason of letters,
# numbers, periods, colons and white space (spaces, tabs), each up to 512 characters and optionally
# ending with an asterisk.
VALID_RULES = [
    {"onExitCode": "65", "action": "EXIT"},
    {"onExitCode": "1*", "action": "RETRY"},
    {"onExitCode": "*", "action": "exit"},
    {"onExitCode": "9" * LONGEST, "action": "Retry"},
    {"onExitCode": "9" * (LONGEST - 1) + "*", "action": "EXIT"},
    {"onReason": "*", "action": "EXIT"},
    {"onReason": "OutOfMemory*", "action": "EXIT"},
    {"onReason": "CannotPullContainerError: image*", "action": "RETRY"},
    {"onReason": "x" * LONGEST, "action": "EXIT"},
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    {"onStatusReason": "Essential container in task exited", "action": "EXIT"},
    {"onStatusReason": "Task failed: 3.1\tagain*", "action": "retry"},
    {"onStatusReason": "y" * (LONGEST - 1) + "*", "action": "EXIT"},
    {"onExitCode": "137", "onReason": "OutOfMemoryError*", "onStatusReason": "*", "action": "EXIT"},
]

# (rule, words the message must hold: the field, then what is wrong)
INVALID_RULES = [
    ({"onExitCode": "", "action": "EXIT"}, ["evaluateOnExit[0].onExitCode", "1 to 512 characters"]),
    (
        {"onExitCode": "-1", "action": "EXIT"},
        ["evaluateOnExit[0].onExitCode", "'-' is not allowed", "numbers"],
    ),
    ({"onExitCode": "1a", "action": "EXIT"}, ["onExitCode '1a'", "'a' is not allowed"]),
    ({"onExitCode": "12.5", "action": "EXIT"}, ["onExitCode '12.5'", "'.' is not allowed"]),
    ({"onExitCode": "*1", "action": "EXIT"}, ["onExitCode '*1'", "asterisk (*) may only end it"]),
    ({"onExitCode": "1**", "action": "EXIT"}, ["onExitCode '1**'", "asterisk (*) may only end it"]),
    ({"onExitCode": "1" * (LONGEST + 1), "action": "EXIT"}, ["onExitCode", "1 to 512 characters", "513"]),
    ({"onReason": "", "action": "EXIT"}, ["evaluateOnExit[0].onReason", "1 to 512 characters"]),
    ({"onReason": "a*b", "action": "EXIT"}, ["onReason 'a*b'", "asterisk (*) may only end it"]),
    ({"onReason": "under_score", "action": "EXIT"}, ["onReason 'under_score'", "'_' is not allowed"]),
    ({"onReason": "x" * (LONGEST + 1), "action": "EXIT"}, ["onReason", "1 to 512 characters", "513"]),
    (
        {"onStatusReason": "Host EC2 (instance*", "action": "RETRY"},
        ["onStatusReason 'Host EC2 (instance*'", "'(' is not allowed", "periods (.), colons (:)"],
    ),
    ({"onStatusReason": "hy-phen", "action": "EXIT"}, ["onStatusReason 'hy-phen'", "'-' is not allowed"]),
    ({"onStatusReason": "a/b", "action": "EXIT"}, ["onStatusReason 'a/b'", "'/' is not allowed"]),
    ({"onStatusReason": "**", "action": "EXIT"}, ["onStatusReason '**'", "asterisk (*) may only end it"]),
    ({"onStatusReason": "y" * LONGEST + "*", "action": "EXIT"}, ["onStatusReason", "513"]),
    ({"onExitCode": "1", "action": "RETRIES"}, ["evaluateOnExit[0].action", "'RETRIES'", "RETRY", "EXIT"]),
    ({"onExitCode": "1", "action": ""}, ["evaluateOnExit[0].action", "RETRY", "EXIT"]),
    ({"action": "EXIT"}, ["evaluateOnExit[0]", "needs onExitCode, onReason or onStatusReason"]),
]


def _message(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == "ClientException"
    return str(raised.value.response["Error"]["Message"])


def _strategy(rule: dict[str, str]) -> dict[str, Any]:
    # The rule comes second, so that the message must name its own position, not the first one's.
    return {"attempts": 2, "evaluateOnExit": [{"onExitCode": "65", "action": "EXIT"}, rule]}


@pytest.mark.parametrize(
    "rule", VALID_RULES, ids=lambda rule: ",".join(f"{k}={v[:12]}" for k, v in rule.items())
)
def test_what_aws_allows_is_accepted_in_definitions_and_submissions(
    batch: Any, submit: Submit, rule: dict[str, str]
) -> None:
    arn = register_test_definition(batch, "exit-rules-valid", retryStrategy=_strategy(rule))
    stored = batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"][0]
    assert stored["retryStrategy"]["evaluateOnExit"][1] == rule
    assert submit("print:x", name="valid-rule", retryStrategy=_strategy(rule))


@pytest.mark.parametrize(("rule", "words"), INVALID_RULES, ids=lambda item: str(item)[:40])
def test_what_aws_refuses_is_refused_naming_the_field(
    batch: Any, submit: Submit, rule: dict[str, str], words: list[str]
) -> None:
    for call in (
        lambda: register_test_definition(batch, "exit-rules-invalid", retryStrategy=_strategy(rule)),
        lambda: submit("print:x", name="invalid-rule", retryStrategy=_strategy(rule)),
    ):
        message = _message(call)
        assert "retryStrategy.evaluateOnExit[1]" in message
        for word in words:
            assert word.replace("[0]", "[1]") in message, message


def test_the_star_forms_and_any_case_of_action_decide_retries(
    submit: Submit, wait_status: WaitStatus
) -> None:
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [
            {"onExitCode": "4*", "action": "retry"},
            {"onStatusReason": "Essential container in task*", "action": "Exit"},
        ],
    }
    retried = wait_status(submit("exit:42", name="exit-42", retryStrategy=strategy))
    assert retried["status"] == "FAILED"
    assert [attempt["container"]["exitCode"] for attempt in retried["attempts"]] == [42, 42, 42]
    final = wait_status(submit("exit:3", name="exit-3", retryStrategy=strategy))
    assert final["status"] == "FAILED"
    assert [attempt["container"]["exitCode"] for attempt in final["attempts"]] == [3]

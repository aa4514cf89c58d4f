"""BatchFanoutTrigger: serialize() lists every __init__ argument and rebuilds an equal trigger."""

from __future__ import annotations

import importlib
import inspect

import pytest

from batch_fanout.triggers.batch import BatchFanoutTrigger

VARIANTS = [
    {"job_id": "abc"},
    {
        "job_id": "abc-123",
        "aws_conn_id": "other",
        "region_name": "eu-west-1",
        "verify": False,
        "botocore_config": {"retries": {"mode": "standard"}},
        "poll_interval": 0.2,
        "tolerated_failures": 3,
        "fail_fast": True,
        "terminate_on_kill": False,
    },
]


@pytest.mark.parametrize("arguments", VARIANTS)
def test_serialize_round_trips(arguments: dict) -> None:
    trigger = BatchFanoutTrigger(**arguments)

    classpath, kwargs = trigger.serialize()
    module_name, _, class_name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module_name), class_name)(**kwargs)

    assert rebuilt == trigger
    assert rebuilt.serialize() == (classpath, kwargs)
    for name, value in arguments.items():
        assert kwargs[name] == value


def test_serialize_lists_every_init_argument() -> None:
    parameters = set(inspect.signature(BatchFanoutTrigger.__init__).parameters) - {"self"}
    _, kwargs = BatchFanoutTrigger(job_id="x").serialize()
    assert set(kwargs) == parameters


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"job_id": ""}, "job_id"),
        ({"job_id": "x", "poll_interval": 0}, "poll_interval"),
        ({"job_id": "x", "tolerated_failures": -1}, "tolerated_failures"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchFanoutTrigger(**arguments)

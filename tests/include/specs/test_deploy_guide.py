"""docs/deploy.md: every command in it is one the project provides (and parses) or a real AWS CLI
command, and it names every parameter and output of the stack it deploys."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import botocore.session
import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "deploy.md"
STACK = ROOT / "include" / "specs" / "cloudformation" / "batch-fanout.yaml"

# High-level AWS CLI commands that are not API operations.
AWS_CLI_CUSTOM_COMMANDS = {
    ("s3", "ls"),
    ("s3", "rb"),
    ("cloudformation", "deploy"),
    ("ecr", "get-login-password"),
}


def shell_lines() -> list[str]:
    """The commands of the guide's bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    assert blocks, "the guide has no bash blocks"
    lines: list[str] = []
    for block in blocks:
        lines.extend(line.strip() for line in block.replace("\\\n", " ").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def commands(program: str) -> list[list[str]]:
    """Arguments of every ``program`` command, in pipelines and in ``$(...)`` substitutions too."""
    found = []
    for line in shell_lines():
        inner = re.findall(r"\$\(([^()]*)\)", line)
        # A value built by a command substitution or a shell variable becomes a stand-in.
        outer = re.sub(r"\$\([^()]*\)", "VALUE", line)
        for segment in [part for text in [*inner, outer] for part in text.split("|")]:
            words = shlex.split(re.sub(r"\$[A-Za-z_]\w*", "VALUE", segment), comments=True)
            if words and words[0] == program:
                found.append(words[1:])
    return found


def test_every_batch_fanout_command_parses() -> None:
    from batch_fanout.cli import build_parser

    found = commands("batch-fanout")
    assert any(args[:2] == ["specs", "register"] for args in found)
    parser = build_parser()
    for args in found:
        if args[0] != "specs":
            continue  # other parts' commands (batch-fanout local ...) are tested there
        try:
            parsed = parser.parse_args(args)
        except SystemExit:  # argparse exits on an unknown flag or subcommand
            pytest.fail(f"docs/deploy.md: batch-fanout {' '.join(args)} does not parse")
        assert callable(parsed.func), args


def test_every_aws_command_exists() -> None:
    session = botocore.session.get_session()
    found = commands("aws")
    assert len(found) >= 10
    for args in found:
        service, command = args[0], args[1]
        if (service, command) in AWS_CLI_CUSTOM_COMMANDS:
            continue
        model = session.get_service_model(service)
        if command == "wait":
            waiter = "".join(part.capitalize() for part in args[2].split("-"))
            assert waiter in session.get_waiter_model(service).waiter_names, args
            continue
        operation = "".join(part.capitalize() for part in command.split("-"))
        assert operation in model.operation_names, f"docs/deploy.md: aws {service} {command} does not exist"


def test_the_guide_names_every_stack_parameter_and_output() -> None:
    template, matches = decode(str(STACK))
    assert template is not None and not matches
    guide = GUIDE.read_text()
    for parameter in template["Parameters"]:
        assert f"`{parameter}`" in guide, f"parameter {parameter} is not described in docs/deploy.md"
    for output in re.findall(r"stack_output (\w+)", guide):
        assert output in template["Outputs"], f"docs/deploy.md reads an output {output} the stack lacks"
    assert "--capabilities CAPABILITY_IAM" in guide

"""``batch-fanout specs validate`` and ``batch-fanout specs register [--dry-run]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from batch_fanout.specs.errors import SpecError
from batch_fanout.specs.loader import load_specs
from batch_fanout.specs.register import pinned_map, register_rendered
from batch_fanout.specs.render import PLATFORMS, SpecSettings, render_job_definitions


def add_parser(subparsers: Any) -> None:
    """Add the ``specs`` command and its subcommands to the ``batch-fanout`` parser."""
    specs = subparsers.add_parser(
        "specs",
        help="validate and register the job definitions of include/specs/",
        description="Validate and register the job definitions of include/specs/.",
    )
    commands = specs.add_subparsers(dest="specs_command", metavar="SUBCOMMAND")

    validate = commands.add_parser(
        "validate",
        help="check every spec against the AWS Batch API model and render the job definitions",
        description="Check every spec against botocore's AWS Batch model and the project's rules, "
        "and render the job definitions with the image settings. Calls no AWS API.",
    )
    _add_render_arguments(validate)
    validate.set_defaults(func=run_validate)

    register = commands.add_parser(
        "register",
        help="register every job definition whose spec changed (idempotent)",
        description="Register every job definition idempotently: an unchanged spec reuses its ACTIVE "
        "revision, a changed one gets a new revision. Prints name:revision for each.",
    )
    _add_render_arguments(register)
    register.add_argument("--dry-run", action="store_true", help="print what would change; register nothing")
    register.add_argument(
        "--endpoint-url",
        help="AWS Batch endpoint, e.g. http://127.0.0.1:8699 for the local endpoint "
        "(default: AWS, or AWS_ENDPOINT_URL_BATCH)",
    )
    register.add_argument("--region", help="AWS region (default: the AWS CLI's configuration)")
    register.add_argument("--profile", help="AWS CLI profile to use")
    register.add_argument(
        "--json", action="store_true", help="print only the map name -> name:revision, as JSON"
    )
    register.set_defaults(func=run_register)

    specs.set_defaults(func=lambda args: _usage(specs))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--specs-dir",
        type=Path,
        help="the specs directory (default: $BATCH_FANOUT_SPECS_DIR, else include/specs)",
    )
    parser.add_argument(
        "--image-registry",
        help="registry of the job images, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com; "
        "'local' for the local endpoint (default: $BATCH_FANOUT_IMAGE_REGISTRY)",
    )
    parser.add_argument(
        "--image-tag",
        help="tag of the job images; 'latest' for the local endpoint (default: $BATCH_FANOUT_IMAGE_TAG)",
    )
    parser.add_argument(
        "--job-role-arn", help="IAM role the jobs run as (default: $BATCH_FANOUT_JOB_ROLE_ARN)"
    )
    parser.add_argument(
        "--execution-role-arn",
        help="IAM role that pulls images and writes logs (default: $BATCH_FANOUT_EXECUTION_ROLE_ARN)",
    )
    parser.add_argument(
        "--platform",
        choices=PLATFORMS,
        help="compute platform of the job definitions (default: $BATCH_FANOUT_PLATFORM, else EC2)",
    )


def _settings(args: argparse.Namespace) -> SpecSettings:
    return SpecSettings.from_environment(
        image_registry=args.image_registry,
        image_tag=args.image_tag,
        job_role_arn=args.job_role_arn,
        execution_role_arn=args.execution_role_arn,
        platform=args.platform,
    )


def run_validate(args: argparse.Namespace) -> int:
    try:
        specs = load_specs(args.specs_dir)
        rendered = {
            definition.display: definition for definition in render_job_definitions(specs, _settings(args))
        }
    except SpecError as error:
        print(error, file=sys.stderr)
        return 1
    for spec in specs:
        definition = rendered.get(spec.display)
        detail = f"  sha256 {definition.sha256[:12]}" if definition else ""
        print(f"ok  {spec.display}  {spec.kind} {spec.name}{detail}")
    return 0


def run_register(args: argparse.Namespace) -> int:
    try:
        rendered = render_job_definitions(load_specs(args.specs_dir), _settings(args))
    except SpecError as error:
        print(error, file=sys.stderr)
        return 1

    import boto3
    import botocore.exceptions

    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        client = session.client("batch", endpoint_url=args.endpoint_url)
        outcomes = register_rendered(client, rendered, dry_run=args.dry_run)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        print(f"batch-fanout specs register: AWS Batch call failed: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(pinned_map(outcomes), indent=2, sort_keys=True))
        return 0
    for outcome in outcomes:
        print(outcome.describe())
    if args.dry_run:
        print("dry run: nothing was registered")
    return 0

"""The CloudFormation templates of include/specs/cloudformation/: cfn-lint passes on every one, and
their IAM policies grant no action or resource wider than the jobs and Airflow need."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "include" / "specs" / "cloudformation"
TEMPLATES = sorted(TEMPLATES_DIR.glob("*.yaml"))
STACK = TEMPLATES_DIR / "batch-fanout.yaml"

# Actions AWS only grants on Resource "*", and why.
STAR_ONLY_ACTIONS = {
    "ecr:GetAuthorizationToken": "ECR's registry login token has no resource-level permissions",
    "batch:DescribeJobs": "AWS Batch Describe actions have no resource-level permissions",
    "batch:DescribeJobDefinitions": "AWS Batch Describe actions have no resource-level permissions",
    "batch:DescribeJobQueues": "AWS Batch Describe actions have no resource-level permissions",
    "batch:DescribeComputeEnvironments": "AWS Batch Describe actions have no resource-level permissions",
    "batch:ListJobs": "AWS Batch List actions have no resource-level permissions",
}

# AWS managed policies a role may carry, and why no inline policy can replace them.
ALLOWED_MANAGED_POLICIES = {
    "AmazonEC2ContainerServiceforEC2Role": "AWS Batch's documented policy for the ECS agent of its EC2 "
    "container instances (cluster registration, image pulls, log delivery)",
}

# Exactly what each identity may do; one more action fails the test.
EXPECTED_ACTIONS = {
    "JobRole": {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    },
    "ExecutionRole": {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    },
    "InstanceRole": set(),
    "AirflowPolicy": {
        "batch:RegisterJobDefinition",
        "batch:TagResource",
        "iam:PassRole",
        "batch:SubmitJob",
        "batch:TerminateJob",
        "batch:CancelJob",
        *(action for action in STAR_ONLY_ACTIONS if action.startswith("batch:")),
        "logs:GetLogEvents",
        "logs:DescribeLogStreams",
        "s3:ListBucket",
        "s3:GetObject",
    },
}
S3_WRITE_ACTIONS = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}


def load(path: Path) -> dict[str, Any]:
    template, matches = decode(str(path))
    assert not matches, f"{path.name}: {matches}"
    assert template is not None
    return dict(template)


def as_text(value: Any) -> str:
    """A resource as readable text: intrinsic functions become ``${...}`` references."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return "${" + argument + "}"
        if function == "Fn::GetAtt":
            return "${" + ".".join(argument if isinstance(argument, list) else argument.split(".")) + "}"
        if function == "Fn::Sub":
            return argument if isinstance(argument, str) else argument[0]
    raise AssertionError(f"unexpected resource expression {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policies(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every identity policy of the template, with the logical id of its role or managed policy."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            found.extend((logical_id, policy["PolicyDocument"]) for policy in properties.get("Policies", []))
        elif resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            found.append((logical_id, properties["PolicyDocument"]))
    return found


def iam_problems(template: dict[str, Any]) -> list[str]:
    """Every grant wider than needed, named by identity and statement."""
    problems = []
    granted: dict[str, set[str]] = {name: set() for name in EXPECTED_ACTIONS}
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for statement in properties["AssumeRolePolicyDocument"]["Statement"]:
                principal = statement.get("Principal")
                if not (isinstance(principal, dict) and set(principal) == {"Service"}):
                    problems.append(
                        f"{logical_id}: trust policy principal {principal!r} is not an AWS service"
                    )
            for arn in properties.get("ManagedPolicyArns", []):
                name = as_text(arn).rsplit("/", 1)[-1]
                if name not in ALLOWED_MANAGED_POLICIES:
                    problems.append(f"{logical_id}: managed policy {name} is not known to be required")
        if resource["Type"] == "AWS::S3::BucketPolicy":
            for statement in properties["PolicyDocument"]["Statement"]:
                if statement["Effect"] != "Deny":
                    problems.append(f"{logical_id}: bucket policy grants {statement.get('Action')!r}")
    for owner, document in policies(template):
        for statement in document["Statement"]:
            where = f"{owner}/{statement.get('Sid', '?')}"
            if statement["Effect"] != "Allow":
                continue
            if "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{where}: NotAction/NotResource grants everything else")
                continue
            actions = [str(action) for action in as_list(statement["Action"])]
            granted.setdefault(owner, set()).update(actions)
            problems.extend(f"{where}: wildcard action {a!r}" for a in actions if "*" in a)
            resources = [as_text(r) for r in as_list(statement["Resource"])]
            for resource in resources:
                if resource == "*":
                    unjustified = [a for a in actions if a not in STAR_ONLY_ACTIONS]
                    if unjustified:
                        problems.append(
                            f"{where}: Resource '*' for {unjustified}, which AWS scopes by resource"
                        )
                    continue
                problems.extend(resource_problems(where, actions, resource, statement))
    for owner, expected in EXPECTED_ACTIONS.items():
        extra = granted.get(owner, set()) - expected
        if extra:
            problems.append(f"{owner}: grants actions beyond what it needs: {sorted(extra)}")
    return problems


def resource_problems(where: str, actions: list[str], resource: str, statement: dict[str, Any]) -> list[str]:
    problems = []
    own_resources = ("${ResultsBucket.Arn}", "Repository.Arn}", "${JobQueue}", "Role.Arn}")
    in_own_account = "${AWS::AccountId}" in resource and "${AWS::Region}" in resource
    if not (any(marker in resource for marker in own_resources) or in_own_account):
        problems.append(f"{where}: {resource} is not a resource of this stack or account")
    head, _, last = resource.rpartition("/") if "/" in resource else resource.rpartition(":")
    if "*" in head:
        problems.append(f"{where}: {resource} has a wildcard before its last segment")
    if last == "*" and not any(
        scope in head for scope in ("${ResultsPrefix}", "${InputsPrefix}", "log-group:/aws/batch/job", ":job")
    ):
        problems.append(f"{where}: {resource} matches everything of its kind")
    if resource.startswith("${ResultsBucket.Arn}/"):
        prefix = resource.removeprefix("${ResultsBucket.Arn}/").split("/")[0]
        if prefix not in ("${ResultsPrefix}", "${InputsPrefix}"):
            problems.append(f"{where}: {resource} is outside the results and inputs prefixes")
        if prefix == "${InputsPrefix}" and set(actions) & S3_WRITE_ACTIONS:
            problems.append(
                f"{where}: jobs may only read inputs, not {sorted(set(actions) & S3_WRITE_ACTIONS)}"
            )
    if resource == "${ResultsBucket.Arn}" and "s3:ListBucket" in actions:
        prefixes = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if not prefixes:
            problems.append(
                f"{where}: s3:ListBucket on the whole bucket; limit it with an s3:prefix condition"
            )
        elif any(
            not as_text(p).startswith(("${ResultsPrefix}/", "${InputsPrefix}/")) for p in as_list(prefixes)
        ):
            problems.append(
                f"{where}: s3:ListBucket prefix condition {prefixes!r} is wider than the run prefix"
            )
    return problems


def test_cfn_lint_passes_on_every_template_and_names_a_bad_one(tmp_path: Path) -> None:
    assert TEMPLATES, f"no templates in {TEMPLATES_DIR}"
    broken = tmp_path / "broken.yaml"
    broken.write_text(STACK.read_text().replace("Type: AWS::Batch::JobQueue", "Type: AWS::Batch::JobQeue"))
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    assert cfn_lint.is_file(), f"cfn-lint is not installed beside {sys.executable} (the test extra has it)"
    # One cfn-lint process for all templates: its start-up dominates. The broken copy shows that a
    # rejected template is reported by file and line, and that the real ones report nothing.
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", *map(str, TEMPLATES), str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    reported = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode != 0
    assert reported, result.stderr
    assert all(line.startswith(f"{broken}:") for line in reported), result.stdout
    assert any("AWS::Batch::JobQeue" in line for line in reported), result.stdout


def test_iam_policies_grant_only_what_is_needed() -> None:
    for path in TEMPLATES:
        assert iam_problems(load(path)) == [], path.name


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda t: t["Resources"]["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][
                1
            ].update(Action="s3:*"),
            "JobRole/ReadWriteRunOutputs: wildcard action 's3:*'",
            id="wildcard-action",
        ),
        pytest.param(
            lambda t: t["Resources"]["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][
                1
            ].update(Resource="*"),
            "JobRole/ReadWriteRunOutputs: Resource '*' for ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', "
            "'s3:AbortMultipartUpload'], which AWS scopes by resource",
            id="star-resource",
        ),
        pytest.param(
            lambda t: t["Resources"]["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][
                1
            ].update(Resource={"Fn::Sub": "${ResultsBucket.Arn}/*"}),
            "JobRole/ReadWriteRunOutputs: ${ResultsBucket.Arn}/* matches everything of its kind",
            id="whole-bucket",
        ),
        pytest.param(
            lambda t: t["Resources"]["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][
                0
            ].pop("Condition"),
            "JobRole/ListRunsAndInputs: s3:ListBucket on the whole bucket; limit it with an s3:prefix condition",
            id="list-without-prefix",
        ),
        pytest.param(
            lambda t: t["Resources"]["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][
                2
            ].update(Action=["s3:GetObject", "s3:PutObject"]),
            "JobRole/ReadInputs: jobs may only read inputs, not ['s3:PutObject']",
            id="write-inputs",
        ),
        pytest.param(
            lambda t: t["Resources"]["AirflowPolicy"]["Properties"]["PolicyDocument"]["Statement"][0].update(
                Resource={"Fn::Sub": "arn:${AWS::Partition}:batch:*:*:job-definition/*"}
            ),
            "AirflowPolicy/RegisterJobDefinitions: arn:${AWS::Partition}:batch:*:*:job-definition/* has a "
            "wildcard before its last segment",
            id="other-account",
        ),
        pytest.param(
            lambda t: t["Resources"]["InstanceRole"]["Properties"]["ManagedPolicyArns"].append(
                "arn:aws:iam::aws:policy/AdministratorAccess"
            ),
            "InstanceRole: managed policy AdministratorAccess is not known to be required",
            id="admin-managed-policy",
        ),
    ],
)
def test_the_iam_check_catches_a_widened_policy(change: Any, expected: str) -> None:
    template = copy.deepcopy(load(STACK))
    change(template)
    assert expected in iam_problems(template)

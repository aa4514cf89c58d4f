"""The local endpoint's trust boundary, tried as an attacker would: raw HTTP that a web page, a DNS
rebinding page or another local user can send. Each request gets a 4xx, nothing it asks for runs, and
the endpoint keeps serving; clients given only ``batch-fanout local env`` do run work."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.awsrequest
import pytest

from batch_fanout.local.auth import LocalCredentials, verify_signature
from batch_fanout.local.errors import ApiError
from batch_fanout.local.testing import EndpointHandle, running_endpoint

from .conftest import CONTAINERS_DIR, QUEUE

AWS_CLI = Path(sys.executable).parent / "aws"
HINT = "batch-fanout local env"
Response = tuple[int, dict[str, str], dict[str, Any]]


def _send(
    endpoint: EndpointHandle, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Response:
    """One request over a fresh connection; ``Host`` is http.client's (the endpoint's) unless given."""
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    try:
        headers = dict(headers or {})
        skip_host = any(name.lower() == "host" for name in headers)
        connection.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        payload = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(payload or b"{}")
    finally:
        connection.close()


def _sign_at(
    credentials: LocalCredentials,
    method: str,
    url: str,
    body: bytes,
    *,
    when: datetime,
    service: str = "batch",
) -> dict[str, str]:
    """``headers`` signed with botocore's signer as of ``when`` (to make an expired signature)."""
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body)
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    signer = botocore.auth.SigV4Auth(credentials.botocore(), service, "us-east-1")
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    signer._inject_signature_to_request(request, signature)  # type: ignore[attr-defined]
    return {name: str(value) for name, value in request.headers.items()}


def _refused(response: Response, status: int, code: str, *message_parts: str) -> None:
    got_status, headers, body = response
    assert (got_status, body.get("__type")) == (status, code), response
    assert headers["x-amzn-errortype"] == code
    assert not any(name.startswith("access-control-") for name in headers)
    for part in message_parts:
        assert part in body["message"], body


def test_hostile_requests_are_refused_and_run_nothing(
    endpoint: EndpointHandle,
    definition: str,
    batch: Any,
    tmp_path: Path,
    wait_status: Callable[..., dict[str, Any]],
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()

    def submit_body(name: str) -> bytes:
        return json.dumps(
            {
                "jobName": name,
                "jobQueue": QUEUE,
                "jobDefinition": definition,
                "containerOverrides": {"command": ["python", "testjob.py", f"touch:{markers / name}"]},
            }
        ).encode()

    submit = "/v1/submitjob"
    port = endpoint.port
    credentials = endpoint.credentials

    # A page's fetch() with a "simple" content type, so that the browser sends no preflight.
    _refused(
        _send(endpoint, "POST", submit, submit_body("hostile-text"), {"Content-Type": "text/plain"}),
        403,
        "MissingAuthenticationTokenException",
        HINT,
    )
    # A plain HTML form, from a page and from a sandboxed frame (Origin: null), and with no Origin.
    form = b"jobName=hostile-form&jobQueue=" + QUEUE.encode() + b"&jobDefinition=testjob"
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    for origin in ("http://evil.example", "null"):
        _refused(
            _send(endpoint, "POST", submit, form, {**form_type, "Origin": origin}),
            403,
            "AccessDeniedException",
            "Origin",
        )
    _refused(_send(endpoint, "POST", submit, form, form_type), 403, "MissingAuthenticationTokenException")
    _refused(
        _send(endpoint, "POST", submit, submit_body("hostile-fetch"), {"Sec-Fetch-Site": "cross-site"}),
        403,
        "AccessDeniedException",
        "Sec-Fetch-Site",
    )
    # A CORS preflight gets no grant.
    _refused(
        _send(
            endpoint,
            "OPTIONS",
            submit,
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        ),
        403,
        "AccessDeniedException",
    )
    # Unsigned RegisterJobDefinition with a command of its own, then SubmitJob of it.
    hostile_definition = json.dumps(
        {
            "jobDefinitionName": "hostile-definition",
            "type": "container",
            "containerProperties": {
                "image": "r/n/testjob:1",
                "command": ["python", "testjob.py", f"touch:{markers / 'hostile-definition'}"],
            },
        }
    ).encode()
    _refused(
        _send(endpoint, "POST", "/v1/registerjobdefinition", hostile_definition),
        403,
        "MissingAuthenticationTokenException",
    )
    unsigned_submit = json.dumps(
        {"jobName": "hostile-registered", "jobQueue": QUEUE, "jobDefinition": "hostile-definition"}
    ).encode()
    _refused(_send(endpoint, "POST", submit, unsigned_submit), 403, "MissingAuthenticationTokenException")

    # DNS rebinding: the page's own name resolves to 127.0.0.1. Refused even when correctly signed.
    foreign = f"evil.example:{port}"
    for method, path, body in (
        ("POST", "/v1/describejobs", b'{"jobs": ["x"]}'),
        ("GET", "/_local/status", b""),
        ("POST", submit, submit_body("hostile-rebound")),
    ):
        signed = _sign_at(
            credentials, method, f"http://{foreign}{path}", body, when=datetime.now(timezone.utc)
        )
        _refused(
            _send(endpoint, method, path, body, {**signed, "Host": foreign}),
            403,
            "AccessDeniedException",
            "Host",
        )
    # A correct signature does not make a browser's request acceptable.
    body = submit_body("hostile-signed-origin")
    signed = endpoint.signed_headers("POST", submit, body, {"Origin": "http://evil.example"})
    _refused(_send(endpoint, "POST", submit, body, signed), 403, "AccessDeniedException", "Origin")

    # Another local user without the secret: a guessed secret, a guessed key, an old signature, a
    # signature taken from another request, the status route.
    body = submit_body("hostile-wrong-secret")
    wrong = LocalCredentials(credentials.access_key_id, "not-the-endpoint-secret-0123456789")
    headers = _sign_at(wrong, "POST", f"{endpoint.url}{submit}", body, when=datetime.now(timezone.utc))
    _refused(_send(endpoint, "POST", submit, body, headers), 403, "InvalidSignatureException", HINT)
    body = submit_body("hostile-wrong-key")
    stranger = LocalCredentials("AKIASTRANGERSTRANGER", credentials.secret_access_key)
    headers = _sign_at(stranger, "POST", f"{endpoint.url}{submit}", body, when=datetime.now(timezone.utc))
    _refused(_send(endpoint, "POST", submit, body, headers), 403, "UnrecognizedClientException", HINT)
    body = submit_body("hostile-expired")
    old = datetime.now(timezone.utc) - timedelta(minutes=6)
    headers = _sign_at(credentials, "POST", f"{endpoint.url}{submit}", body, when=old)
    _refused(_send(endpoint, "POST", submit, body, headers), 403, "InvalidSignatureException", "expired")
    harmless = b'{"jobs": ["x"]}'
    headers = endpoint.signed_headers("POST", submit, harmless)
    _refused(
        _send(endpoint, "POST", submit, submit_body("hostile-swapped-body"), headers),
        403,
        "InvalidSignatureException",
        "does not match",
    )
    declared = endpoint.signed_headers(
        "POST", submit, harmless, {"X-Amz-Content-SHA256": "0" * 64}
    )  # a signed, declared payload hash that is not the body's
    _refused(
        _send(endpoint, "POST", submit, submit_body("hostile-declared"), declared),
        403,
        "InvalidSignatureException",
        "x-amz-content-sha256",
    )
    _refused(_send(endpoint, "GET", "/_local/status"), 403, "MissingAuthenticationTokenException")
    logs_body = b'{"logGroupName": "/aws/batch/job", "logStreamName": "x"}'
    _refused(
        _send(endpoint, "POST", "/", logs_body, {"X-Amz-Target": "Logs_20140328.GetLogEvents"}),
        403,
        "MissingAuthenticationTokenException",
    )

    # The endpoint still serves, and a signed job runs to the end: had any hostile job been accepted
    # before it, it would be listed, and its marker would be there.
    assert endpoint.status() is not None
    follow_up = batch.submit_job(
        jobName="signed-follow-up",
        jobQueue=QUEUE,
        jobDefinition=definition,
        containerOverrides={"command": ["python", "testjob.py", f"touch:{markers / 'signed'}"]},
    )["jobId"]
    assert wait_status(follow_up)["status"] == "SUCCEEDED"
    assert sorted(path.name for path in markers.iterdir()) == ["signed"]
    names = {
        job["jobName"]
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
        for job in batch.list_jobs(jobQueue=QUEUE, jobStatus=status)["jobSummaryList"]
    }
    assert not [name for name in names if name.startswith("hostile")]
    assert batch.describe_job_definitions(jobDefinitionName="hostile-definition")["jobDefinitions"] == []


def test_signatures_are_checked_for_scope_and_clock_skew() -> None:
    credentials = LocalCredentials("AKIAEXAMPLEEXAMPLE00", "example-secret-example-secret")
    url = "http://127.0.0.1:8699/v1/describejobs"
    body = b'{"jobs": ["a"]}'
    now = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)

    def verify(headers: dict[str, str], service: str = "batch", at: datetime = now) -> str:
        return verify_signature(
            "POST",
            "/v1/describejobs",
            headers.items(),
            body,
            credentials=credentials,
            service=service,
            now=at,
        )

    headers = {"Host": "127.0.0.1:8699", **_sign_at(credentials, "POST", url, body, when=now)}
    assert verify(headers) == "us-east-1"
    # Within the 5 minutes AWS allows either way, and not beyond.
    assert verify(headers, at=now + timedelta(minutes=4, seconds=59)) == "us-east-1"
    for at, words in (
        (now + timedelta(minutes=5, seconds=1), "expired"),
        (now - timedelta(minutes=6), "not yet"),
    ):
        with pytest.raises(ApiError) as raised:
            verify(headers, at=at)
        assert (raised.value.code, raised.value.status) == ("InvalidSignatureException", 403)
        assert words in raised.value.message
    # Signed for Batch, sent as a CloudWatch Logs call.
    with pytest.raises(ApiError, match="correct service: 'logs', not 'batch'"):
        verify(headers, service="logs")
    # The signature itself names the headers it covers; dropping one is an incomplete signature.
    unsigned_date = dict(headers)
    unsigned_date["Authorization"] = headers["Authorization"].replace("host;x-amz-date", "host")
    with pytest.raises(ApiError, match="must include x-amz-date"):
        verify(unsigned_date)
    with pytest.raises(ApiError) as raised:
        verify({**headers, "Authorization": "Basic dXNlcjpwYXNz"})
    assert raised.value.code == "IncompleteSignatureException"


def test_credentials_are_private_and_local_env_points_stock_clients_at_the_endpoint(
    endpoint: EndpointHandle, definition: str, tmp_path: Path, wait_status: Callable[..., dict[str, Any]]
) -> None:
    credentials_file = endpoint.data_dir / "credentials.json"
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
    assert endpoint.credentials.secret_access_key not in (endpoint.data_dir / "server.log").read_text()

    # Only what `batch-fanout local env` prints: no AWS variable of the test session, no flag.
    base = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    base.update({"AWS_PAGER": "", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    printed = subprocess.run(
        [sys.executable, "-m", "batch_fanout.cli", "local", "env", "--data-dir", str(endpoint.data_dir)],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    exported = dict(line.removeprefix("export ").split("=", 1) for line in printed.splitlines())
    assert exported == endpoint.env()
    assert all(line.startswith("export ") for line in printed.splitlines())

    cli_flow = f"""
set -euo pipefail
eval "$("{sys.executable}" -m batch_fanout.cli local env --data-dir "{endpoint.data_dir}")"
leader=$("{AWS_CLI}" batch submit-job --job-name cli-leader --job-queue {QUEUE} --job-definition testjob \
    --parameters step=print:leader --query jobId --output text)
"{AWS_CLI}" batch submit-job --job-name cli-followers --job-queue {QUEUE} --job-definition testjob \
    --depends-on jobId=$leader,type=N_TO_N --array-properties size=12 --query jobId --output text
"""
    boto3_flow = f"""
set -euo pipefail
eval "$("{sys.executable}" -m batch_fanout.cli local env --data-dir "{endpoint.data_dir}")"
"{sys.executable}" - <<'EOF'
import boto3
batch = boto3.client("batch")
leader = batch.submit_job(jobName="boto3-leader", jobQueue="{QUEUE}", jobDefinition="testjob")["jobId"]
print(batch.submit_job(
    jobName="boto3-followers", jobQueue="{QUEUE}", jobDefinition="testjob",
    dependsOn=[{{"jobId": leader, "type": "N_TO_N"}}], arrayProperties={{"size": 12}},
)["jobId"])
EOF
"""
    for flow in (cli_flow, boto3_flow):
        run = subprocess.run(
            ["bash", "-c", flow], env=base, capture_output=True, text=True, timeout=120, check=False
        )
        assert run.returncode == 0, run.stderr
        followers = wait_status(run.stdout.strip().splitlines()[-1], timeout=60)
        assert followers["status"] == "SUCCEEDED"
        assert followers["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 12
        assert followers["dependsOn"][0]["type"] == "N_TO_N"

    # A wrong secret in the environment gets the 403 and its hint from the CLI, at once.
    wrong = {**base, **endpoint.env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret-wrong-secret-0123"}
    refused = subprocess.run(
        [str(AWS_CLI), "batch", "describe-job-queues"], env=wrong, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "InvalidSignatureException" in refused.stderr and HINT in refused.stderr


def test_explicit_credentials_file(tmp_path: Path) -> None:
    team = tmp_path / "team-credentials.json"
    team.write_text(
        json.dumps(
            {"aws_access_key_id": "AKIATEAMTEAMTEAM0001", "aws_secret_access_key": "team-secret-0123456789"}
        )
    )
    team.chmod(0o600)
    data_dir = tmp_path / "data"
    with running_endpoint(data_dir, containers_dir=CONTAINERS_DIR, credentials_file=team) as handle:
        assert handle.credentials.access_key_id == "AKIATEAMTEAMTEAM0001"
        assert handle.client("batch").describe_job_queues()["jobQueues"]
        assert not (data_dir / "credentials.json").exists()
        printed = subprocess.run(
            [sys.executable, "-m", "batch_fanout.cli", "local", "env", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "export AWS_ACCESS_KEY_ID=AKIATEAMTEAMTEAM0001" in printed.splitlines()

    team.write_text('{"aws_access_key_id": "AKIATEAMTEAMTEAM0001"}')
    serve = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch_fanout.local",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--credentials-file",
            str(team),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 1
    assert "team-credentials.json: aws_secret_access_key must be" in serve.stderr


@pytest.mark.slow
def test_the_local_airflow_api_server_listens_on_loopback_only(airflow_db: Path, repo_root: Path) -> None:
    import psutil

    # The host settings exactly as local-env.sh exports them, on the test session's Airflow home.
    sourced = subprocess.run(
        ["bash", "-c", f'source "{repo_root / "local-env.sh"}" >/dev/null && env -0'],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    hosts = {
        name: value
        for name, value in (item.split("=", 1) for item in sourced.split("\0") if "=" in item)
        if name.startswith("AIRFLOW__") and name.endswith("_HOST")
    }
    assert hosts["AIRFLOW__API__HOST"] == "127.0.0.1"
    with socket_port() as port:
        pass
    environment = {**os.environ, **hosts, "AIRFLOW__API__WORKERS": "1", "AIRFLOW__API__PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server"],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listening: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 120
        # Polling another process until it binds: it has no other way to say it is up.
        while port not in {p for _, p in listening} and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.2)
            listening = set()
            for process in [
                server_process := psutil.Process(server.pid),
                *server_process.children(recursive=True),
            ]:
                with contextlib.suppress(psutil.Error):
                    listening |= {
                        (c.laddr.ip, c.laddr.port)
                        for c in process.net_connections(kind="inet")
                        if c.status == psutil.CONN_LISTEN
                    }
        assert port in {p for _, p in listening}, f"the api-server did not listen on {port}: {listening}"
        assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextlib.contextmanager
def socket_port() -> Iterator[int]:
    """A free port on 127.0.0.1 (released before the server binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield int(probe.getsockname()[1])


def test_a_connection_with_a_wrong_secret_fails_at_once_with_the_403(
    endpoint: EndpointHandle, definition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import botocore.exceptions
    from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
    from airflow.providers.amazon.aws.triggers.batch import BatchJobTrigger

    from batch_fanout.hooks.batch_client import BatchFanoutClientHook
    from batch_fanout.triggers.batch import BatchFanoutTrigger

    connection = endpoint.connection()
    connection["password"] = "a-wrong-secret-a-wrong-secret-0"
    monkeypatch.setenv("AIRFLOW_CONN_WRONG_SECRET_AWS", json.dumps(connection))
    job_id = endpoint.client("batch").submit_job(
        jobName="never-watched", jobQueue=QUEUE, jobDefinition=definition
    )["jobId"]

    # Neither the provider's hooks nor the triggers retry it: the error reaches the task log.
    for hook in (
        BatchClientHook(aws_conn_id="wrong_secret_aws", region_name="us-east-1"),
        BatchFanoutClientHook(aws_conn_id="wrong_secret_aws", region_name="us-east-1"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            hook.get_job_description(job_id)
        assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
        assert HINT in str(raised.value)

    async def first_event(trigger: Any) -> Any:
        async for event in trigger.run():
            return event
        return None

    stock = BatchJobTrigger(
        job_id=job_id, waiter_delay=1, waiter_max_attempts=3, aws_conn_id="wrong_secret_aws"
    )
    event = asyncio.run(first_event(stock))
    assert event.payload["status"] == "error"
    assert "InvalidSignatureException" in event.payload["message"]
    ours = BatchFanoutTrigger(
        job_id=job_id, aws_conn_id="wrong_secret_aws", region_name="us-east-1", poll_interval=1
    )
    event = asyncio.run(first_event(ours))
    assert event.payload["status"] == "error"
    assert "InvalidSignatureException" in event.payload["message"]

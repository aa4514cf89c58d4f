"""The local endpoint's trust boundary: its credentials, SigV4 verification and the browser guards.

Every request must carry an AWS Signature Version 4 made with the endpoint's own credentials. The
expected signature is computed with botocore's own signer (:class:`botocore.auth.SigV4Auth`) from the
request as received and its own ``X-Amz-Date``, so the canonicalisation is exactly the one every AWS
SDK uses. Before that, and before anything is parsed, requests that a browser could have sent (an
``Origin`` header, cross-site fetch metadata) or that arrive under a foreign ``Host`` (DNS rebinding)
are refused, even when they are signed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import string
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from batch_fanout.local import DEFAULT_REGION
from batch_fanout.local.errors import ApiError

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
STATE_FILE = "endpoint.json"
MAX_CLOCK_SKEW = timedelta(minutes=5)
HINT = "get the endpoint's credentials with `batch-fanout local env`"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
ACCESS_KEY_PATTERN = re.compile(r"^[A-Z0-9]{16,128}$")
MIN_SECRET_LENGTH = 16
AUTHORIZATION_PATTERN = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class CredentialsError(ValueError):
    """A credentials file is missing, unreadable or malformed; the message names the file."""


@dataclass(frozen=True)
class LocalCredentials:
    """The endpoint's access key id and secret access key.

    :param access_key_id: the access key id clients send in their signature's scope
    :param secret_access_key: the secret that signs; never logged
    """

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # a traceback or a log line must never show the secret
        return f"LocalCredentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"

    def botocore(self) -> botocore.credentials.Credentials:
        """The same credentials as botocore's signer takes them."""
        return botocore.credentials.Credentials(self.access_key_id, self.secret_access_key)


def generate_credentials() -> LocalCredentials:
    """A new access key id (``AKIA`` and 16 letters or digits, as AWS's look) and a 40-character secret."""
    alphabet = string.ascii_uppercase + string.digits
    access_key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return LocalCredentials(access_key_id, secrets.token_urlsafe(30))


def load_credentials(path: Path) -> LocalCredentials:
    """Read a credentials file: a JSON object with ``aws_access_key_id`` and ``aws_secret_access_key``.

    :param path: the file
    :raises CredentialsError: when it cannot be read or is malformed, naming the file and the field
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CredentialsError(f"credentials file {path}: cannot be read: {error.strerror}") from None
    except ValueError as error:
        raise CredentialsError(f"credentials file {path}: not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"credentials file {path}: must be a JSON object")
    access_key_id = document.get("aws_access_key_id")
    secret = document.get("aws_secret_access_key")
    if not isinstance(access_key_id, str) or not ACCESS_KEY_PATTERN.match(access_key_id):
        raise CredentialsError(
            f"credentials file {path}: aws_access_key_id must be 16 to 128 upper-case letters or digits"
        )
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH or any(c.isspace() for c in secret):
        raise CredentialsError(
            f"credentials file {path}: aws_secret_access_key must be at least {MIN_SECRET_LENGTH} "
            "characters with no white space"
        )
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Other local users are part of the threat model: a readable secret lets them run commands.
        log.warning("credentials file %s is readable by other users; chmod 600 it", path)
    return LocalCredentials(access_key_id, secret)


def ensure_credentials(data_dir: Path) -> LocalCredentials:
    """The credentials of ``data_dir``, created (mode 0600) when it has none yet.

    Two processes that create them at once agree: the file is written under a private name and
    linked into place, and the loser reads the winner's file.

    :param data_dir: the endpoint's data directory
    """
    path = data_dir / CREDENTIALS_FILE
    if path.exists():
        return load_credentials(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    credentials = generate_credentials()
    temporary = data_dir / f".{CREDENTIALS_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "aws_access_key_id": credentials.access_key_id,
                    "aws_secret_access_key": credentials.secret_access_key,
                },
                handle,
            )
            handle.write("\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return load_credentials(path)


def credentials_for_data_dir(data_dir: Path) -> LocalCredentials:
    """The credentials that the endpoint of ``data_dir`` verifies with.

    That is the ``--credentials-file`` it was started with (recorded, as a path, in its state file), or
    else the data directory's own credentials, created when missing.

    :param data_dir: the endpoint's data directory
    """
    explicit = recorded_credentials_file(data_dir)
    return load_credentials(explicit) if explicit is not None else ensure_credentials(data_dir)


def recorded_credentials_file(data_dir: Path) -> Path | None:
    """The ``--credentials-file`` that the endpoint of ``data_dir`` runs with, if it was given one."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    value = state.get("credentials_file") if isinstance(state, dict) else None
    return Path(value) if isinstance(value, str) and value else None


# -- before parsing: the browser and DNS-rebinding guards ---------------------------------------------


def check_request_origin(headers: Iterable[tuple[str, str]], port: int) -> None:
    """Refuse what a web page could have sent, before anything of the request is parsed.

    :param headers: the request's headers, as (name, value) pairs
    :param port: the port the endpoint listens on
    :raises ApiError: HTTP 403 naming the header that was refused
    """
    allowed_hosts = {f"{name}:{port}" for name in LOOPBACK_HOSTS}
    hosts = []
    for name, value in headers:
        lname = name.lower()
        if lname == "host":
            hosts.append(value.strip().lower())
        elif lname == "origin":
            # Only browsers send Origin; no SDK or CLI does. A leaked secret in a page stays useless.
            raise ApiError(
                "AccessDeniedException",
                f"Requests with an Origin header ({value!r}) are refused: the local endpoint does not "
                "answer web pages",
                403,
            )
        elif lname == "sec-fetch-site" and value.strip().lower() != "none":
            raise ApiError(
                "AccessDeniedException",
                f"Requests with Sec-Fetch-Site: {value.strip()} are refused: the local endpoint does not "
                "answer web pages",
                403,
            )
    if len(hosts) != 1 or hosts[0] not in allowed_hosts:
        # A foreign name is DNS rebinding: a page's own host name resolved to 127.0.0.1.
        shown = ", ".join(repr(host) for host in hosts) or "none"
        raise ApiError(
            "AccessDeniedException",
            f"Host header {shown} is refused: use {', '.join(sorted(allowed_hosts))}",
            403,
        )


# -- after reading the body: the signature -------------------------------------------------------------


def _amz_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ApiError(
            "IncompleteSignatureException",
            f"X-Amz-Date {value!r} is not a date of the form YYYYMMDD'T'HHMMSS'Z'",
            403,
        ) from None


def verify_signature(
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    credentials: LocalCredentials,
    service: str,
    now: datetime | None = None,
) -> str:
    """Verify a request's SigV4 signature as AWS does; return the region it was signed for.

    :param method: the HTTP method
    :param path: the request target as received (path and query string, still percent-encoded)
    :param headers: the request's headers, as (name, value) pairs
    :param body: the request body
    :param credentials: the endpoint's credentials
    :param service: the signing name that the scope must name (``batch`` or ``logs``)
    :param now: the current time (for tests of the clock skew)
    :raises ApiError: HTTP 403 with AWS's error code for what is wrong
    """
    received: dict[str, list[str]] = {}
    for name, value in headers:
        received.setdefault(name.lower(), []).append(value)
    authorization = (received.get("authorization") or [""])[0]
    if not authorization:
        if "X-Amz-Signature=" in path:
            raise ApiError(
                "IncompleteSignatureException",
                f"Pre-signed URLs are not accepted by the local endpoint; sign the request's headers ({HINT})",
                403,
            )
        raise ApiError("MissingAuthenticationTokenException", f"Missing Authentication Token ({HINT})", 403)
    match = AUTHORIZATION_PATTERN.match(authorization.strip())
    if match is None:
        raise ApiError(
            "IncompleteSignatureException",
            "Authorization header must be 'AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, "
            f"SignedHeaders=..., Signature=<64 hex digits>' ({HINT})",
            403,
        )
    scope = match.group("credential").split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise ApiError(
            "IncompleteSignatureException",
            f"Credential must be KEY/YYYYMMDD/REGION/SERVICE/aws4_request, got {match.group('credential')!r}",
            403,
        )
    access_key_id, scope_date, region, scope_service, _ = scope
    if not hmac.compare_digest(access_key_id.encode(), credentials.access_key_id.encode()):
        raise ApiError(
            "UnrecognizedClientException",
            f"The security token included in the request is invalid: access key {access_key_id!r} is not "
            f"the local endpoint's ({HINT})",
            403,
        )
    signed_names = match.group("signed").split(";")
    if signed_names != sorted(set(signed_names)) or any(name != name.lower() for name in signed_names):
        raise ApiError(
            "IncompleteSignatureException", "SignedHeaders must be lower-case, sorted and distinct", 403
        )
    for required in ("host", "x-amz-date"):
        if required not in signed_names:
            raise ApiError(
                "IncompleteSignatureException",
                f"SignedHeaders must include {required}; it has {match.group('signed')!r}",
                403,
            )
    missing = [name for name in signed_names if name not in received]
    if missing:
        raise ApiError(
            "IncompleteSignatureException",
            f"Signed header {missing[0]} is not in the request",
            403,
        )
    timestamp = received["x-amz-date"][0].strip()
    signed_at = _amz_date(timestamp)
    if scope_date != timestamp[:8]:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid date: {scope_date!r} is not the date of X-Amz-Date "
            f"{timestamp!r} ({HINT})",
            403,
        )
    if scope_service != service:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}', not {scope_service!r} ({HINT})",
            403,
        )
    current = now or datetime.now(timezone.utc)
    if signed_at < current - MAX_CLOCK_SKEW:
        raise ApiError(
            "InvalidSignatureException",
            f"Signature expired: {timestamp} is now earlier than "
            f"{(current - MAX_CLOCK_SKEW).strftime(AMZ_DATE_FORMAT)} "
            f"({current.strftime(AMZ_DATE_FORMAT)} - 5 min.)",
            403,
        )
    if signed_at > current + MAX_CLOCK_SKEW:
        raise ApiError(
            "InvalidSignatureException",
            f"Signature not yet current: {timestamp} is still later than "
            f"{(current + MAX_CLOCK_SKEW).strftime(AMZ_DATE_FORMAT)} "
            f"({current.strftime(AMZ_DATE_FORMAT)} + 5 min.)",
            403,
        )
    body_hash = hashlib.sha256(body).hexdigest()
    declared = received.get("x-amz-content-sha256")
    if declared is not None and declared[0].strip() != body_hash:
        # botocore signs a declared payload hash instead of hashing the body: check it is the body's.
        raise ApiError(
            "InvalidSignatureException",
            "The provided x-amz-content-sha256 header does not match the SHA-256 of the request body",
            403,
        )

    # The request as the client signed it: only its signed headers, the body as received.
    request = botocore.awsrequest.AWSRequest(
        method=method, url=f"http://{received['host'][0]}{path}", data=body
    )
    request.headers = botocore.awsrequest.HTTPHeaders()
    for name in signed_names:
        for value in received[name]:
            request.headers[name] = value
    request.context["timestamp"] = timestamp
    signer = botocore.auth.SigV4Auth(credentials.botocore(), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected.encode(), match.group("signature").encode()):
        raise ApiError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your "
            f"AWS Secret Access Key and signing method ({HINT})",
            403,
        )
    return region


def signed_headers(
    method: str,
    url: str,
    *,
    credentials: LocalCredentials,
    region: str,
    service: str = "batch",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """``headers`` with the ones that sign the request (``Authorization``, ``X-Amz-Date``) added, made
    by botocore's signer.

    For the endpoint's own ``/_local/*`` routes, which no SDK calls, and for tests that send raw HTTP.

    :param method: the HTTP method
    :param url: the full URL
    :param credentials: the endpoint's credentials
    :param region: the region of the scope
    :param service: the signing name of the scope
    :param body: the request body
    :param headers: the request's other headers, signed too
    """
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers or {})
    botocore.auth.SigV4Auth(credentials.botocore(), service, region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def call_local(
    url: str, credentials: LocalCredentials, method: str, path: str, document: Any, *, timeout: float
) -> dict[str, Any]:
    """A signed call to one of the endpoint's ``/_local/`` routes; its JSON answer.

    :param url: the endpoint's URL
    :param credentials: the endpoint's credentials
    :param method: the HTTP method
    :param path: the route, e.g. ``/_local/faults``
    :param document: the JSON body, or ``None`` for none
    :param timeout: seconds to wait for the answer
    :raises RuntimeError: with the endpoint's message when it refuses the call
    """
    local_url = f"{url}{path}"
    body = b"" if document is None else json.dumps(document).encode()
    headers = signed_headers(
        method,
        local_url,
        credentials=credentials,
        region=DEFAULT_REGION,
        body=body,
        headers={"Content-Type": "application/json"},
    )
    request = urllib.request.Request(local_url, data=body or None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(json.loads(error.read() or b"{}").get("message", str(error))) from error
    return answer

"""``batch-fanout settings load``: the Astro-format settings file loaded into Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batch_fanout.settings import SettingsError, parse_settings

REPO_ROOT = Path(__file__).resolve().parents[3]

GOOD = """
airflow:
  connections:
    - conn_id: {conn_id}
      conn_type: aws
      conn_login: local
      conn_password: local
      conn_extra:
        region_name: us-east-1
        endpoint_url: {endpoint}
  pools:
    - pool_name: {pool}
      pool_slot: 3
      pool_description: submissions
  variables:
    - variable_name: {variable}
      variable_value: file://${{RESULTS_HOME}}/.results
"""


def airflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, timeout=120
    )


def load(path: Path, env_home: str = "/srv/x") -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "batch_fanout.cli", "settings", "load", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RESULTS_HOME": env_home},
    )


@pytest.mark.slow
def test_load_is_idempotent_updates_changes_and_is_visible_to_airflow(
    airflow_db: Path, tmp_path: Path
) -> None:
    settings = tmp_path / "airflow_settings.yaml"
    names = {"conn_id": "settings_test_aws", "pool": "settings_test_pool", "variable": "settings_test_uri"}
    settings.write_text(GOOD.format(endpoint="http://127.0.0.1:8699", **names))

    first = load(settings)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "connection settings_test_aws: created",
        "pool settings_test_pool: created",
        "variable settings_test_uri: created",
    ]
    second = load(settings)
    assert second.returncode == 0, second.stderr
    assert all(line.endswith(": unchanged") for line in second.stdout.splitlines())

    connection = json.loads(airflow("connections", "get", "settings_test_aws", "-o", "json").stdout)[0]
    assert connection["conn_type"] == "aws"
    assert connection["extra_dejson"] == {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:8699"}
    assert airflow("variables", "get", "settings_test_uri").stdout.strip() == "file:///srv/x/.results"
    assert "settings_test_pool" in airflow("pools", "get", "settings_test_pool").stdout

    settings.write_text(GOOD.format(endpoint="http://127.0.0.1:9000", **names))
    third = load(settings)
    assert "connection settings_test_aws: updated" in third.stdout.splitlines()
    assert "pool settings_test_pool: unchanged" in third.stdout.splitlines()


@pytest.mark.slow
def test_a_broken_entry_is_named_and_nothing_is_loaded(airflow_db: Path, tmp_path: Path) -> None:
    settings = tmp_path / "airflow_settings.yaml"
    broken = GOOD.format(
        endpoint="http://127.0.0.1:8699",
        conn_id="broken_test_aws",
        pool="broken_test_pool",
        variable="broken_var",
    ).replace("pool_slot: 3", "pool_slot: many")
    settings.write_text(broken)
    result = load(settings)
    assert result.returncode == 1
    assert "airflow.pools[0] (pool_name broken_test_pool): field pool_slot" in result.stderr
    assert "nothing was loaded" in result.stderr
    # The valid connection before the broken pool was not loaded either.
    assert airflow("connections", "get", "broken_test_aws").returncode != 0


def test_the_projects_settings_file_puts_results_in_the_project_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from batch_fanout.settings import load_settings_file

    monkeypatch.delenv("BATCH_FANOUT_HOME", raising=False)
    # Given, so that the test creates no credentials in the checkout's own .local-batch.
    monkeypatch.setenv("BATCH_FANOUT_LOCAL_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("BATCH_FANOUT_LOCAL_SECRET_ACCESS_KEY", "example-secret-example-secret")
    settings = load_settings_file(REPO_ROOT / "airflow_settings.yaml")
    results = {v.key: v.value for v in settings.variables}["batch_fanout_results_uri"]
    assert results == (REPO_ROOT / ".results").as_uri()


def test_the_projects_settings_file_is_valid() -> None:
    settings = parse_settings(
        (REPO_ROOT / "airflow_settings.yaml").read_text(),
        "airflow_settings.yaml",
        {
            "BATCH_FANOUT_HOME": "/p",
            "BATCH_FANOUT_LOCAL_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00",
            "BATCH_FANOUT_LOCAL_SECRET_ACCESS_KEY": "example-secret-example-secret",
        },
    )
    assert [c.conn_id for c in settings.connections] == ["batch_fanout_aws", "batch_fanout_slack"]
    connection = settings.connections[0]
    assert (connection.login, connection.password) == (
        "AKIAEXAMPLEEXAMPLE00",
        "example-secret-example-secret",
    )
    assert settings.connections[0].extra["endpoint_url"].startswith("http://127.0.0.1:")
    # Slack is off until the variable names the webhook connection.
    assert settings.connections[1].conn_type == "slackwebhook"
    assert {v.key: v.value for v in settings.variables}["batch_fanout_slack_conn_id"] == ""
    assert {v.key: v.value for v in settings.variables}["batch_fanout_results_uri"] == "file:///p/.results"
    assert [p.name for p in settings.pools] == ["batch_submissions"]


def test_the_connection_gets_the_local_endpoints_credentials_from_its_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import stat

    from batch_fanout.local.auth import load_credentials
    from batch_fanout.settings import load_settings_file

    for name in (
        "BATCH_FANOUT_HOME",
        "BATCH_FANOUT_LOCAL_ACCESS_KEY_ID",
        "BATCH_FANOUT_LOCAL_SECRET_ACCESS_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    settings_file = tmp_path / "airflow_settings.yaml"
    settings_file.write_text((REPO_ROOT / "airflow_settings.yaml").read_text())

    first = load_settings_file(settings_file).connections[0]
    credentials_file = tmp_path / ".local-batch" / "credentials.json"
    assert stat.S_IMODE(os.stat(credentials_file).st_mode) == 0o600
    created = load_credentials(credentials_file)
    assert (first.login, first.password) == (created.access_key_id, created.secret_access_key)
    assert created.access_key_id.startswith("AKIA") and len(created.secret_access_key) >= 40
    # A second load (or the endpoint's first start) reuses them.
    assert load_settings_file(settings_file).connections[0] == first

    # An endpoint started with --credentials-file records its path; the connection follows it.
    explicit = tmp_path / "team.json"
    explicit.write_text(
        '{"aws_access_key_id": "AKIATEAMTEAMTEAM0001", "aws_secret_access_key": "team-secret-0123456789"}'
    )
    (tmp_path / ".local-batch" / "endpoint.json").write_text(json.dumps({"credentials_file": str(explicit)}))
    assert load_settings_file(settings_file).connections[0].login == "AKIATEAMTEAMTEAM0001"

    explicit.write_text('{"aws_access_key_id": "short", "aws_secret_access_key": "team-secret-0123456789"}')
    with pytest.raises(SettingsError, match=r"team\.json: aws_access_key_id must be"):
        load_settings_file(settings_file)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("airflow: [", "not valid YAML"),
        ("other: {}", "single key 'airflow'"),
        (
            "airflow:\n  connections:\n    - conn_type: aws",
            "airflow.connections[0]: field conn_id is required",
        ),
        (
            "airflow:\n  connections:\n    - conn_id: a\n      conn_type: aws\n      conn_port: 99999",
            "airflow.connections[0] (conn_id a): field conn_port must be a port number",
        ),
        (
            "airflow:\n  connections:\n    - conn_id: a\n      conn_type: aws\n      conn_extra: '{bad'",
            "airflow.connections[0] (conn_id a): field conn_extra is not valid JSON",
        ),
        (
            "airflow:\n  connections:\n    - conn_id: a\n      conn_typo: aws",
            "airflow.connections[0]: unknown field 'conn_typo'",
        ),
        (
            "airflow:\n  variables:\n    - variable_name: v",
            "(variable_name v): field variable_value is required",
        ),
        (
            "airflow:\n  variables:\n    - variable_name: v\n      variable_value: ${NOT_SET_ANYWHERE}",
            "environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "airflow:\n  pools:\n    - pool_name: p\n      pool_slot: 1\n    - pool_name: p\n      pool_slot: 2",
            "airflow.pools: 'p' appears more than once",
        ),
        ("airflow:\n  pools: {}", "airflow.pools must be a list"),
    ],
)
def test_malformed_settings_name_the_entry_and_field(document: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_settings(document, "settings.yaml", {})
    assert str(raised.value).startswith("settings.yaml: ")
    assert message in str(raised.value)


@pytest.mark.slow
def test_load_creates_the_local_results_store_the_settings_name(airflow_db: Path, tmp_path: Path) -> None:
    settings = tmp_path / "airflow_settings.yaml"
    settings.write_text(
        "airflow:\n  variables:\n"
        "    - variable_name: settings_test_results_uri\n"
        "      variable_value: file://${RESULTS_HOME}/store/.results\n"
        "    - variable_name: settings_test_s3_results_uri\n"
        "      variable_value: s3://settings-test-bucket/results\n"
    )
    home = tmp_path / "project"
    first = load(settings, env_home=str(home))
    assert first.returncode == 0, first.stderr
    assert (home / "store" / ".results").is_dir()
    assert f"results store {home / 'store' / '.results'}: created" in first.stdout.splitlines()
    assert "s3://" not in first.stdout.replace("variable settings_test_s3_results_uri", "")
    again = load(settings, env_home=str(home))
    assert f"results store {home / 'store' / '.results'}: exists" in again.stdout.splitlines()

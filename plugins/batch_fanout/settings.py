"""Load ``airflow_settings.yaml`` (the Astro CLI's format) into Airflow's metadata database.

The Astro CLI loads this file into its Docker containers; without Docker, ``batch-fanout settings
load`` does the same: it checks the whole file first, then creates or updates every connection, pool
and variable in one transaction, so a malformed file loads nothing. Loading the same file twice
changes nothing the second time.

``${NAME}`` in a string value is replaced by the environment variable ``NAME``; an undefined name is
an error, so that no half-expanded value reaches Airflow. ``BATCH_FANOUT_HOME`` defaults to the folder
of the settings file. ``BATCH_FANOUT_LOCAL_ACCESS_KEY_ID`` and ``BATCH_FANOUT_LOCAL_SECRET_ACCESS_KEY``
default to the credentials of the local endpoint whose data directory is ``.local-batch`` beside the
file (created there when it has none yet), so the connection in the database signs as the endpoint
expects, also for runs triggered from the UI.

A variable named ``*_results_uri`` whose value is a ``file://`` URI names a local results store: its
folder is created when the file is loaded, so the first run triggered from the UI finds it (an S3
bucket is created by its own stack, never here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SETTINGS_FILE = "airflow_settings.yaml"

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
LOCAL_ACCESS_KEY_VARIABLE = "BATCH_FANOUT_LOCAL_ACCESS_KEY_ID"
LOCAL_SECRET_VARIABLE = "BATCH_FANOUT_LOCAL_SECRET_ACCESS_KEY"


class SettingsError(ValueError):
    """The settings file is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class ConnectionEntry:
    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class PoolEntry:
    name: str
    slots: int
    description: str | None = None


@dataclass(frozen=True)
class VariableEntry:
    key: str
    value: str
    description: str | None = None


@dataclass(frozen=True)
class Settings:
    connections: tuple[ConnectionEntry, ...]
    pools: tuple[PoolEntry, ...]
    variables: tuple[VariableEntry, ...]


_CONNECTION_FIELDS = {
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_extra",
    "conn_description",
}
_POOL_FIELDS = {"pool_name", "pool_slot", "pool_description"}
_VARIABLE_FIELDS = {"variable_name", "variable_value", "variable_description"}


def _expand(value: str, where: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise SettingsError(f"{where}: environment variable {name} is not set")
        return environ[name]

    return _ENV_REFERENCE.sub(replace, value)


def _expand_all(value: Any, where: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _expand(value, where, environ)
    if isinstance(value, dict):
        return {key: _expand_all(item, f"{where}.{key}", environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_all(item, f"{where}[{i}]", environ) for i, item in enumerate(value)]
    return value


def _optional_str(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SettingsError(f"{where}: field {key} must be a string, got {type(value).__name__}")
    return str(value)


def _required_str(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = _optional_str(entry, key, where)
    if value is None or not value.strip():
        raise SettingsError(f"{where}: field {key} is required")
    return value


def _check_fields(entry: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(entry, dict):
        raise SettingsError(f"{where}: must be a mapping of fields, got {type(entry).__name__}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise SettingsError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return entry


def _parse_connection(raw: Any, where: str, environ: Mapping[str, str]) -> ConnectionEntry:
    entry = _expand_all(_check_fields(raw, _CONNECTION_FIELDS, where), where, environ)
    conn_id = _required_str(entry, "conn_id", where)
    where = f"{where} (conn_id {conn_id})"
    port_value = entry.get("conn_port")
    port: int | None
    if port_value in (None, ""):
        port = None
    elif isinstance(port_value, int) and not isinstance(port_value, bool) and 0 < port_value < 65536:
        port = port_value
    elif isinstance(port_value, str) and port_value.isdigit() and 0 < int(port_value) < 65536:
        port = int(port_value)
    else:
        raise SettingsError(f"{where}: field conn_port must be a port number 1..65535, got {port_value!r}")
    extra_value = entry.get("conn_extra")
    if extra_value in (None, ""):
        extra: dict[str, Any] = {}
    elif isinstance(extra_value, dict):
        extra = extra_value
    elif isinstance(extra_value, str):
        try:
            extra = json.loads(extra_value)
        except json.JSONDecodeError as error:
            raise SettingsError(f"{where}: field conn_extra is not valid JSON: {error}") from None
        if not isinstance(extra, dict):
            raise SettingsError(f"{where}: field conn_extra must be a JSON object")
    else:
        raise SettingsError(f"{where}: field conn_extra must be a mapping or a JSON object string")
    return ConnectionEntry(
        conn_id=conn_id,
        conn_type=_required_str(entry, "conn_type", where),
        host=_optional_str(entry, "conn_host", where),
        schema=_optional_str(entry, "conn_schema", where),
        login=_optional_str(entry, "conn_login", where),
        password=_optional_str(entry, "conn_password", where),
        port=port,
        extra=extra,
        description=_optional_str(entry, "conn_description", where),
    )


def _parse_pool(raw: Any, where: str, environ: Mapping[str, str]) -> PoolEntry:
    entry = _expand_all(_check_fields(raw, _POOL_FIELDS, where), where, environ)
    name = _required_str(entry, "pool_name", where)
    where = f"{where} (pool_name {name})"
    slots = entry.get("pool_slot")
    if isinstance(slots, str) and slots.lstrip("-").isdigit():
        slots = int(slots)
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < -1:
        raise SettingsError(
            f"{where}: field pool_slot must be a whole number >= -1 (-1: unlimited), got {slots!r}"
        )
    return PoolEntry(name=name, slots=slots, description=_optional_str(entry, "pool_description", where))


def _parse_variable(raw: Any, where: str, environ: Mapping[str, str]) -> VariableEntry:
    entry = _expand_all(_check_fields(raw, _VARIABLE_FIELDS, where), where, environ)
    key = _required_str(entry, "variable_name", where)
    where = f"{where} (variable_name {key})"
    if "variable_value" not in entry or entry["variable_value"] is None:
        raise SettingsError(f"{where}: field variable_value is required")
    value = entry["variable_value"]
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    elif isinstance(value, bool):
        value = "true" if value else "false"
    return VariableEntry(
        key=key, value=str(value), description=_optional_str(entry, "variable_description", where)
    )


def parse_settings(text: str, source: str, environ: Mapping[str, str] | None = None) -> Settings:
    """Check a whole settings document and return its entries; raise :class:`SettingsError` on the
    first malformed entry, naming the file, the entry and the field.

    :param text: the YAML document
    :param source: the file name used in error messages
    :param environ: where ``${NAME}`` references are looked up (default: the process environment)
    """
    environ = os.environ if environ is None else environ
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SettingsError(f"{source}: not valid YAML: {error}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict) or set(document) - {"airflow"}:
        raise SettingsError(f"{source}: the top level must be a mapping with the single key 'airflow'")
    section = document.get("airflow") or {}
    if not isinstance(section, dict):
        raise SettingsError(f"{source}: 'airflow' must be a mapping of connections, pools and variables")
    unknown = sorted(set(section) - {"connections", "pools", "variables"})
    if unknown:
        raise SettingsError(f"{source}: airflow: unknown section {unknown[0]!r}")

    def entries(
        kind: str, parse: Callable[[Any, str, Mapping[str, str]], Any], name_attribute: str
    ) -> tuple[Any, ...]:
        raw_entries = section.get(kind)
        if raw_entries is None:
            raw_entries = []
        if not isinstance(raw_entries, list):
            raise SettingsError(f"{source}: airflow.{kind} must be a list")
        parsed = tuple(
            parse(raw, f"{source}: airflow.{kind}[{index}]", environ) for index, raw in enumerate(raw_entries)
        )
        names = [getattr(item, name_attribute) for item in parsed]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise SettingsError(f"{source}: airflow.{kind}: {duplicates[0]!r} appears more than once")
        return parsed

    return Settings(
        connections=entries("connections", _parse_connection, "conn_id"),
        pools=entries("pools", _parse_pool, "name"),
        variables=entries("variables", _parse_variable, "key"),
    )


class _LocalCredentialsEnviron(Mapping[str, str]):
    """An environment in which the local endpoint's credentials are defaults, read only when a file
    names them: a file that does not use them never creates a credentials file."""

    def __init__(self, environ: Mapping[str, str], data_dir: Path) -> None:
        self._environ = environ
        self._data_dir = data_dir

    def _credentials(self) -> dict[str, str]:
        from batch_fanout.local.auth import CredentialsError, credentials_for_data_dir

        try:
            credentials = credentials_for_data_dir(self._data_dir)
        except CredentialsError as error:
            raise SettingsError(f"the local endpoint's credentials: {error}") from None
        return {
            LOCAL_ACCESS_KEY_VARIABLE: credentials.access_key_id,
            LOCAL_SECRET_VARIABLE: credentials.secret_access_key,
        }

    def __getitem__(self, name: str) -> str:
        if name in self._environ:
            return self._environ[name]
        if name in (LOCAL_ACCESS_KEY_VARIABLE, LOCAL_SECRET_VARIABLE):
            return self._credentials()[name]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._environ or name in (LOCAL_ACCESS_KEY_VARIABLE, LOCAL_SECRET_VARIABLE)

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def load_settings_file(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check a settings file. ``${BATCH_FANOUT_HOME}`` defaults to the file's folder (the
    project), so the project's own file loads from anywhere without setting it; the local endpoint's
    credentials default to those of ``${BATCH_FANOUT_HOME}/.local-batch``."""
    from batch_fanout.local import DEFAULT_DATA_DIR

    merged = {
        "BATCH_FANOUT_HOME": str(path.resolve().parent),
        **(os.environ if environ is None else environ),
    }
    environ = _LocalCredentialsEnviron(merged, Path(merged["BATCH_FANOUT_HOME"]) / DEFAULT_DATA_DIR)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(f"{path}: cannot be read: {error.strerror}") from None
    return parse_settings(text, str(path), environ)


def apply_settings(settings: Settings) -> list[str]:
    """Create or update every entry in one transaction; return one line per entry saying what was done.

    Entries already equal to the file are left untouched, so a second load changes nothing.
    """
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session

    report: list[str] = []
    with create_session() as session:
        for conn in settings.connections:
            existing = session.query(Connection).filter(Connection.conn_id == conn.conn_id).one_or_none()
            wanted: dict[str, Any] = {
                "conn_type": conn.conn_type,
                "host": conn.host,
                "schema": conn.schema,
                "login": conn.login,
                "password": conn.password,
                "port": conn.port,
                "description": conn.description,
            }
            if existing is None:
                session.add(Connection(conn_id=conn.conn_id, extra=json.dumps(conn.extra), **wanted))
                report.append(f"connection {conn.conn_id}: created")
                continue
            current = {name: getattr(existing, name) for name in wanted}
            if current == wanted and existing.extra_dejson == conn.extra:
                report.append(f"connection {conn.conn_id}: unchanged")
                continue
            for name, value in wanted.items():
                setattr(existing, name, value)
            existing.extra = json.dumps(conn.extra)
            report.append(f"connection {conn.conn_id}: updated")

        for pool in settings.pools:
            existing_pool = session.query(Pool).filter(Pool.pool == pool.name).one_or_none()
            if existing_pool is None:
                session.add(
                    Pool(
                        pool=pool.name, slots=pool.slots, description=pool.description, include_deferred=False
                    )
                )
                report.append(f"pool {pool.name}: created")
            elif (existing_pool.slots, existing_pool.description) == (pool.slots, pool.description):
                report.append(f"pool {pool.name}: unchanged")
            else:
                existing_pool.slots = pool.slots
                existing_pool.description = pool.description
                report.append(f"pool {pool.name}: updated")

        for variable in settings.variables:
            existing_variable = session.query(Variable).filter(Variable.key == variable.key).one_or_none()
            if existing_variable is None:
                session.add(Variable(key=variable.key, val=variable.value, description=variable.description))
                report.append(f"variable {variable.key}: created")
            elif (existing_variable.get_val(), existing_variable.description) == (
                variable.value,
                variable.description,
            ):
                report.append(f"variable {variable.key}: unchanged")
            else:
                existing_variable.set_val(variable.value)
                existing_variable.description = variable.description
                report.append(f"variable {variable.key}: updated")
    return report


def _load_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings_file(Path(args.file))
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        print("nothing was loaded", file=sys.stderr)
        return 1
    for line in apply_settings(settings):
        print(line)
    for line in create_local_results_stores(settings):
        print(line)
    return 0


def create_local_results_stores(settings: Settings) -> list[str]:
    """Create the folder of every local results store the settings name (``*_results_uri`` variables
    with a ``file://`` value); return one line per store."""
    from urllib.parse import unquote, urlsplit

    report = []
    for variable in settings.variables:
        if not variable.key.endswith("_results_uri") or not variable.value.startswith("file://"):
            continue
        folder = Path(unquote(urlsplit(variable.value).path))
        existed = folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        report.append(f"results store {folder}: {'exists' if existed else 'created'}")
    return report


def add_parser(subparsers: Any) -> None:
    settings_parser = subparsers.add_parser("settings", help="Airflow connections, pools and variables")
    settings_commands = settings_parser.add_subparsers(dest="settings_command", metavar="COMMAND")
    load_parser = settings_commands.add_parser(
        "load",
        help="load airflow_settings.yaml (Astro CLI format) into Airflow; idempotent, all or nothing",
    )
    load_parser.add_argument("file", nargs="?", default=DEFAULT_SETTINGS_FILE)
    load_parser.set_defaults(func=_load_command)

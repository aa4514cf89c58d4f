"""Job definitions as code: load, validate, render, hash and register the specs of ``include/specs/``.

Typical use::

    from batch_fanout.specs import SpecSettings, pinned_map, register_job_definitions

    outcomes = register_job_definitions(boto3.client("batch"), SpecSettings.from_environment())
    pinned = pinned_map(outcomes)  # {"my-leader": "my-leader:3", ...}
"""

from __future__ import annotations

from batch_fanout.specs.errors import SpecError, SpecProblem
from batch_fanout.specs.loader import HASH_TAG, SpecFile, default_specs_dir, load_specs
from batch_fanout.specs.register import (
    RegistrationOutcome,
    pinned_map,
    register_job_definitions,
    register_rendered,
)
from batch_fanout.specs.render import (
    RenderedJobDefinition,
    SpecSettings,
    render_job_definitions,
    spec_sha256,
)

__all__ = [
    "HASH_TAG",
    "RegistrationOutcome",
    "RenderedJobDefinition",
    "SpecError",
    "SpecFile",
    "SpecProblem",
    "SpecSettings",
    "default_specs_dir",
    "load_specs",
    "pinned_map",
    "register_job_definitions",
    "register_rendered",
    "render_job_definitions",
    "spec_sha256",
]

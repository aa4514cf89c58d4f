"""Code shared by every job image: logical index, results-store I/O, atomic writes, log lines.

Installed with the project (so jobs run by the local endpoint import it) and copied into each image by
its Dockerfile. It never imports Airflow; :mod:`batch_fanout_job.graphs` alone needs numpy and scipy.
"""

from __future__ import annotations

from batch_fanout_job.errors import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_INJECTED_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    BadInputError,
    JobError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_ERROR",
    "EXIT_INJECTED_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "BadInputError",
    "JobError",
]

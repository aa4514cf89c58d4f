"""batch-fanout: Airflow provider for leader -> fan-out -> aggregate pipelines on AWS Batch."""

from __future__ import annotations

__version__ = "0.1.0"

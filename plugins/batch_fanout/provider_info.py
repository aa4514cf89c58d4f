"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Kept in a module of its own, importing nothing heavy, because Airflow calls it while listing
providers.
"""

from __future__ import annotations

from typing import Any

from batch_fanout import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-batch-fanout",
        "name": "batch-fanout",
        "description": (
            "Leader -> fan-out -> aggregate pipelines on AWS Batch: dependent and array jobs, "
            "per-child progress, retry of only the failed children, and a local AWS Batch endpoint."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "AWS Batch",
                "external-doc-url": "https://aws.amazon.com/batch/",
                "tags": ["aws"],
            }
        ],
        "operators": [
            {
                "integration-name": "AWS Batch",
                "python-modules": ["batch_fanout.operators.batch", "batch_fanout.operators.specs"],
            }
        ],
        "sensors": [{"integration-name": "AWS Batch", "python-modules": ["batch_fanout.sensors.batch"]}],
        "hooks": [{"integration-name": "AWS Batch", "python-modules": ["batch_fanout.hooks.batch_client"]}],
        "notifications": ["batch_fanout.notifications.failure.RunFailureNotifier"],
        "extra-links": [
            "batch_fanout.links.batch.BatchFanoutArrayViewLink",
            "batch_fanout.links.batch.BatchFanoutChildLogLink",
            "batch_fanout.links.batch.BatchFanoutReportLink",
            "batch_fanout.links.batch.BatchFanoutJobLink",
            "batch_fanout.links.batch.BatchFanoutChildJobLink",
            "batch_fanout.links.batch.BatchFanoutLogsLink",
            "batch_fanout.links.batch.BatchFanoutResultsLink",
            "batch_fanout.links.batch.BatchFanoutJobDefinitionLink",
            "batch_fanout.links.batch.BatchFanoutJobQueueLink",
        ],
        "triggers": [
            {"integration-name": "AWS Batch", "python-modules": ["batch_fanout.triggers.batch"]},
        ],
    }

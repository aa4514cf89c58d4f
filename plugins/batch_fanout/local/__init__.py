"""A local AWS Batch endpoint: AWS Batch's API and semantics, with jobs run as local processes.

Start it with ``batch-fanout local start`` (see ``docs/local-endpoint.md``); point boto3, the AWS CLI
or the Amazon provider at it through an endpoint URL.
"""

from __future__ import annotations

DEFAULT_PORT = 8699
DEFAULT_DATA_DIR = ".local-batch"
DEFAULT_HOST = "127.0.0.1"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_QUEUE_NAME = "batch-fanout-queue"
DEFAULT_COMPUTE_ENVIRONMENT_NAME = "batch-fanout-ce"
LOG_GROUP_NAME = "/aws/batch/job"
CONTAINERS_DIR_ENV = "BATCH_FANOUT_CONTAINERS_DIR"

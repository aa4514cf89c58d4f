"""Errors that the endpoint returns to its clients in AWS's format."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client: ``__type`` and ``message`` in the body, HTTP ``status``.

    :param code: the AWS error code, for example ``ClientException``
    :param message: what is wrong, naming the input
    :param status: the HTTP status code
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def client_error(message: str) -> ApiError:
    """AWS Batch's error for a request it rejects."""
    return ApiError("ClientException", message, 400)

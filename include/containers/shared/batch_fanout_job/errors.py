"""Exit codes and the one exception type a job raises for a clear, user-facing failure."""

from __future__ import annotations

EXIT_OK = 0
#: Bad input, a failed tool, an incomplete set of outputs: the message says which.
EXIT_ERROR = 1
#: The command line itself is wrong (argparse uses 2 as well).
EXIT_USAGE = 2
#: A failure injected on purpose by ``BATCH_FANOUT_FAIL_ONCE``; a retry succeeds.
EXIT_INJECTED_FAILURE = 3


class JobError(Exception):
    """A failure the job reports as one clear line and a non-zero exit code.

    :param message: what went wrong, naming the input at fault.
    :param exit_code: the process exit code.
    """

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code

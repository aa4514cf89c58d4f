"""Exit codes and the exception types a job raises for a clear, user-facing failure."""

from __future__ import annotations

# The one bad-input code is the provider's job contract, shared by jobs and operators.
from batch_fanout.job_contract import EXIT_BAD_INPUT

EXIT_OK = 0
#: A failed tool, an incomplete set of outputs, an unreadable store: the message says which. Such a
#: failure may pass (a store that was briefly unreachable), so the job definitions let Batch decide.
EXIT_ERROR = 1
#: The command line itself is wrong (argparse uses 2 as well): the job definition is at fault.
EXIT_USAGE = 2
#: A failure injected on purpose by ``BATCH_FANOUT_FAIL_ONCE``; a retry succeeds.
EXIT_INJECTED_FAILURE = 3
#: EXIT_BAD_INPUT (65, sysexits' ``EX_DATAERR``, from :mod:`batch_fanout.job_contract`): a parameter or
#: an input file that no retry can make right, such as a malformed graph, a cost that could overflow, a
#: filter that selects nothing. Every job definition exits on it without a Batch retry, and the
#: provider fails the Airflow task without its retries.


class JobError(Exception):
    """A failure the job reports as one clear line and a non-zero exit code.

    :param message: what went wrong, naming the input at fault.
    :param exit_code: the process exit code.
    """

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BadInputError(JobError):
    """Bad input: the job exits with :data:`EXIT_BAD_INPUT`, and nothing retries it.

    :param message: what is wrong, naming the parameter or the input and, in a file, the line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_BAD_INPUT)

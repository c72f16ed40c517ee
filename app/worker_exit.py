"""A worker's exit status and what it means: a contract of the worker,
which exits with it, and the supervisor, which logs and shows it."""

import enum
import signal


class WorkerExit(enum.IntEnum):
    """The worker's exit status: the supervisor's view of why it ended."""

    STOPPED = 0        # asked to stop, or the supervisor is gone
    CRASHED = 1        # a bug in the loop itself (logged with its traceback)
    BUILD_FAILED = 3   # the sensor could not be built (options, pin, device)
    READ_FAILURES = 4  # max_failures reads failed in a row
    ORPHANED = 5       # the supervisor died while a read did not return


MEANINGS = {
    WorkerExit.STOPPED: "stopped",
    WorkerExit.CRASHED: "crashed",
    WorkerExit.BUILD_FAILED: "could not be built",
    WorkerExit.READ_FAILURES: "too many failed reads",
    WorkerExit.ORPHANED: "orphaned: the supervisor died during a read",
}
"""Each status in the words that the log and ``edgesense status`` use."""

HUNG = "hung in read(): killed after read_timeout"
"""How a worker ended that the supervisor killed because a read hung."""


def describe_exit(exitcode, *, hung=False):
    """How a worker ended, in words, for the log and ``edgesense status``.

    >>> describe_exit(4)
    'too many failed reads (exit 4)'
    >>> describe_exit(3)
    'could not be built (exit 3)'
    >>> describe_exit(-9)
    'signal SIGKILL'
    >>> describe_exit(-9, hung=True)
    'hung in read(): killed after read_timeout'
    >>> describe_exit(2)
    'exit status 2'
    """
    if hung:
        return HUNG
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    if exitcode in MEANINGS:
        return f"{MEANINGS[exitcode]} (exit {exitcode})"
    return f"exit status {exitcode}"

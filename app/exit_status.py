"""The command line's contract: its exit statuses, in one place."""

import enum


class ExitStatus(enum.IntEnum):
    """What ``edgesense`` returns to the shell (and to systemd)."""

    OK = 0
    """Done; for ``run``, stopped cleanly by SIGTERM, SIGINT or Ctrl-C."""
    FAILURE = 1
    """A runtime failure; for ``status``, edgesense is not running."""
    USAGE = 2
    """A bad command line or a bad config file; nothing was started."""
    INTERRUPTED = 130
    """Ctrl-C in a command that is not the service (``logs -f``)."""

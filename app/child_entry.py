"""What every child process of the tree runs around its target.

It names the process first (``app/proctitle.py``), so that ``ps`` and
``top`` show ``edgesense: sensor door`` rather than multiprocessing's
bootstrap. An exception that escapes a process's target is printed by multiprocessing
as a raw traceback on stderr: on the console and in the journal, a dozen
unprefixed lines that no reader can tell from another process's. Each child
is started through a ``ChildEntry`` instead, which turns such an exception
into one line that names the process, and exit status 1.
"""

import os
import sys

from app.proctitle import name_process


class ChildEntry:
    """A picklable process target: ``ChildEntry("log-listener",
    "es:log-listener", run_listener)`` names the process, then runs
    ``run_listener(*args, **kwargs)``; an exception that escapes it is one
    line on stderr, ``edgesense: log-listener (pid 815): PermissionError:
    ...``, and the process exits with status 1."""

    def __init__(self, title, short_name, target):
        self.title = title
        self.short_name = short_name
        self.target = target

    def __call__(self, *args, **kwargs):
        name_process(self.title, self.short_name)
        try:
            return self.target(*args, **kwargs)
        except Exception as error:
            print(f"edgesense: {self.title} (pid {os.getpid()}): {one_line(error)}",
                  file=sys.stderr, flush=True)
            raise SystemExit(1) from None


def one_line(error):
    """``PermissionError: [Errno 13] Permission denied: 'logs'``, on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

"""The command line's world, in one object: ``main`` reads and writes only
through it, so that tests run a command in-process with streams, variables,
a working folder and a clock of their own."""

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TextIO


@dataclass
class Environment:
    """What ``edgesense`` takes from the process it runs in.

    The defaults are this process's own: ``Environment()`` is the real
    world; a test gives ``io.StringIO`` streams, a dict of variables, a
    temporary folder and a fixed clock.
    """

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    cwd: Path = field(default_factory=Path.cwd)
    clock: Callable[[], float] = time.time
    """Seconds since the epoch, as ``time.time``: the "now" of ``status``."""

    def path(self, typed):
        """A path typed on the command line, as the program opens it: relative
        to ``cwd`` (an absolute path stays as it is)."""
        return Path(self.cwd, typed)

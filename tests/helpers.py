"""What many test modules share, in one place: ``from helpers import ...``.

- ``START_METHODS``: the multiprocessing start methods every process test
  covers (conftest.py parametrises the ``start_method`` and ``mp_context``
  fixtures with them).
- ``wait_for(predicate, timeout, what=...)``: poll until a condition holds,
  fail after a bounded time.
- ``edgesense(*args, cwd=...)``: run ``python -m app ARGS`` as a real
  subprocess and capture its output; ``edgesense_command`` and
  ``edgesense_environment`` build the same command and environment for a
  ``subprocess.Popen`` of your own. Use it where the process is the point
  (``run``, signals, exit statuses as the shell sees them).
- ``numbered_lines(count, start=0)``: log lines of ``LINE_BYTES`` bytes
  each, numbered, to write through a live file; ``file_lines(path)``: the
  lines of a log file, plain or gzipped.
- ``fill_disk(directory)``: fill the file system of ``directory`` with a
  file named ``filler``.
- ``edgesense_in_process(*args, cwd=...)``: the same command through
  ``app.cli.main`` in this process, with an ``Environment`` of its own; the
  result has the same ``returncode``, ``stdout`` and ``stderr``. Use it for
  the command line's logic: it costs milliseconds, not an interpreter start.
"""

import gzip
import io
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
START_METHODS = ["fork", "forkserver", "spawn"]
SYSTEMD_VARIABLES = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"}
FIRST_POLL = 0.005
LAST_POLL = 0.05


def wait_for(predicate, timeout, what="condition"):
    """Poll ``predicate`` until it returns a true value and return that value;
    fail the test after ``timeout`` seconds, naming ``what`` was awaited.

    Polls often at first (a condition that is nearly there costs little
    time), then every ``LAST_POLL`` s (a long wait costs little CPU).
    """
    deadline = time.monotonic() + timeout
    interval = FIRST_POLL
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 2, LAST_POLL)


def edgesense_command(*args):
    """The command line of ``edgesense ARGS``, run from this checkout."""
    return [sys.executable, "-m", "app", *args]


def edgesense_environment(**variables):
    """This process's environment without a config of its own
    (``EDGESENSE_CONFIG``) or systemd's variables, with this checkout and
    the tests' own modules (``sensorkit``) importable; then ``variables``."""
    environment = {name: value for name, value in os.environ.items()
                   if name != "EDGESENSE_CONFIG" and name not in SYSTEMD_VARIABLES}
    environment["PYTHONPATH"] = f"{ROOT}{os.pathsep}{TESTS}"
    environment.update(variables)
    return environment


def edgesense(*args, cwd, env=None, timeout=60):
    """Run ``edgesense ARGS`` in ``cwd`` as a subprocess and wait for it (at
    most ``timeout`` s); the completed process, stdout and stderr as text.
    ``env`` adds to (or overrides) ``edgesense_environment()``."""
    return subprocess.run(edgesense_command(*args), cwd=cwd, env=edgesense_environment(**(env or {})),
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class CliResult:
    """What a command returned and wrote, as ``subprocess.run`` reports it."""

    returncode: int
    stdout: str
    stderr: str


def edgesense_in_process(*args, cwd, env=None, now=None):
    """Run ``edgesense ARGS`` through ``app.cli.main`` in this process, as if
    started in ``cwd`` with only the variables ``env`` (so no
    ``EDGESENSE_CONFIG`` unless given) and an empty stdin; ``now`` fixes
    the clock (seconds since the epoch). Its exit status and output."""
    from app.cli import main
    from app.cli_environment import Environment

    stdout, stderr = io.StringIO(), io.StringIO()
    environment = Environment(stdin=io.StringIO(), stdout=stdout, stderr=stderr,
                              environ=dict(env or {}), cwd=Path(cwd))
    if now is not None:
        environment.clock = lambda: now
    status = main(list(args), environment)
    return CliResult(int(status), stdout.getvalue(), stderr.getvalue())


def fill_disk(directory):
    """Fill the file system of ``directory`` with ``directory/filler``."""
    fd = os.open(Path(directory) / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


LINE_BYTES = 50
"""The length of each of ``numbered_lines``: 20 of them fill a 1000-byte file."""


def numbered_lines(count, start=0):
    return [(b"line %06d of the edgesense log" % n).ljust(LINE_BYTES - 1, b".") + b"\n"
            for n in range(start, start + count)]


def file_lines(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as file:
        return file.read().splitlines(keepends=True)


def disk_bytes(path):
    """Bytes of every regular file in ``path``, each inode counted once;
    a file that goes while it is looked at no longer counts."""
    seen = {}
    for entry in os.scandir(path):
        try:
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                seen[(info.st_dev, info.st_ino)] = info.st_size
        except FileNotFoundError:
            continue
    return sum(seen.values())

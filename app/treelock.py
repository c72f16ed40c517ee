"""One tree per configuration: an ``flock`` beside the state file.

The supervisor takes the lock before it writes anything and holds it for
its whole life; the kernel drops it when the process ends, however it ends
(SIGKILL, the OOM killer), so a lock is never stale. A second ``run`` with
the same config finds it held and says who holds it; ``status`` asks the
same lock whether a tree is alive, which a pid alone cannot tell (a pid is
reused, after a reboot most of all).

The file holds ``{"pid": ..., "since": ...}`` (epoch seconds) of the holder;
the lock, not the file's content, is what counts.
"""

import datetime
import fcntl
import json
import os
import stat
import time
from pathlib import Path

LOCK_SUFFIX = ".lock"
READABLE_BY_ALL = 0o644
"""``edgesense status`` runs as whoever logged in and takes the lock shared."""


def lock_path(state_file):
    """``edgesense.state.json.lock`` beside ``edgesense.state.json``."""
    state_file = Path(state_file)
    return state_file.with_name(state_file.name + LOCK_SUFFIX)


class AlreadyRunning(Exception):
    """Another supervisor holds the lock of this configuration."""

    def __init__(self, path, holder):
        self.path = path
        self.holder = holder
        super().__init__(f"lock {path} is held")

    def describe(self, config_name):
        """``edgesense already runs with /etc/edgesense/config.toml (pid 812, since ...)``."""
        pid = self.holder.get("pid", "?")
        since = self.holder.get("since")
        when = (datetime.datetime.fromtimestamp(since).strftime("%Y-%m-%d %H:%M:%S")
                if isinstance(since, (int, float)) else "?")
        return (f"edgesense already runs with {config_name} (pid {pid}, since {when}); "
                f"not starting a second tree (lock {self.path})")


class TreeLockError(Exception):
    """The lock file cannot be used: one line for the person."""


class TreeLock:
    """The supervisor's lock, held from ``acquire`` until ``release`` or the
    process's end. Processes forked from the supervisor close their copy of
    the descriptor, so a lock never outlives the supervisor in a child."""

    def __init__(self, path):
        self.path = Path(path)
        self._fd = None

    def acquire(self):
        """Take the lock, then write who holds it; AlreadyRunning if held."""
        fd = _open(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise AlreadyRunning(self.path, holder) from None
        except OSError as error:
            os.close(fd)
            raise TreeLockError(f"cannot lock {self.path}: {error.strerror or error}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps({"pid": os.getpid(), "since": time.time()}) + "\n").encode(), 0)
        self._fd = fd
        os.register_at_fork(after_in_child=self._forget_in_child)
        return self

    def _forget_in_child(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def lock_held(path):
    """True when a supervisor holds the lock at ``path``, False when none
    does, None when there is no lock file (a tree from before the lock)."""
    try:
        fd = _open(Path(path), os.O_RDONLY)
    except FileNotFoundError:
        return None
    except TreeLockError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)
    return False


def _open(path, flags):
    """Open the lock file without following a link (the state folder may be
    one that others can write), and only if it is a regular file."""
    try:
        if flags & os.O_CREAT:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, READABLE_BY_ALL)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise TreeLockError(f"cannot open the lock file {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TreeLockError(f"the lock file {path} is not a regular file")
    return fd


def _holder(fd):
    try:
        holder = json.loads(os.pread(fd, 256, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}

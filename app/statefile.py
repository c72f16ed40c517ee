"""The small JSON state file that ``edgesense status`` reads.

Each write stamps the file with its writer's identity (``"writer"``: pid,
boot id, start time in clock ticks since boot), so that ``status`` tells
the supervisor from another process that got its pid later, without
trusting a wall clock that jumps on boards without a real-time clock.
"""

import dataclasses
import json
import os
import stat
from pathlib import Path

READABLE_BY_ALL = 0o644
"""``edgesense status`` runs as whoever logged in, not as the service's user."""

STATE_FILE_RESERVE = 4096
"""Bytes of the log folder's budget kept for the state file when it is
written there, whether it exists yet or not."""


def with_room_for_state_file(log_settings, state_file):
    """``log_settings`` whose budget keeps room for ``state_file`` when it
    lies in the log folder."""
    if Path(state_file).parent != Path(log_settings.dir):
        return log_settings
    return dataclasses.replace(log_settings, reserved_file=Path(state_file).name,
                               reserved_bytes=STATE_FILE_RESERVE)


def write_state(path, state):
    """Replace ``path`` atomically: a reader sees the old file or the new one,
    never half of one, and after a power cut the new one or the old one
    (synced before its rename). The temporary file has one name, so a crash
    leaves at most that one, which the next write replaces."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".state-{path.name}.tmp")
    fd = _create_temporary(temporary)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(dict(state, writer=process_identity(os.getpid())), file, indent=1)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _create_temporary(temporary):
    """A new file at ``temporary``, never through a link planted there;
    what an earlier crash left under that name is replaced."""
    for _ in range(2):
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         READABLE_BY_ALL)
        except FileExistsError:
            info = os.lstat(temporary)
            if not (stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()):
                raise
            os.unlink(temporary)
            continue
        os.fchmod(fd, READABLE_BY_ALL)
        return fd
    raise FileExistsError(f"{temporary} keeps coming back")


def process_identity(pid):
    """``{"pid", "boot_id", "start_ticks"}`` of a live process, from
    /proc; None when that cannot be read (the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
        with open("/proc/sys/kernel/random/boot_id") as file:
            boot_id = file.read().strip()
    except (OSError, IndexError):
        return None
    return {"pid": pid, "boot_id": boot_id, "start_ticks": int(fields[19])}

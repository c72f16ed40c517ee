"""The small JSON state file that ``edgesense status`` reads."""

import dataclasses
import json
import os
import tempfile
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
    never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        os.fchmod(fd, READABLE_BY_ALL)
        with os.fdopen(fd, "w") as file:
            json.dump(state, file, indent=1)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


"""The small JSON state file that ``edgesense status`` reads."""

import json
import os
import tempfile
from pathlib import Path

READABLE_BY_ALL = 0o644
"""``edgesense status`` runs as whoever logged in, not as the service's user."""


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


def read_state(path):
    """The state as written, or None when there is no state file."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None

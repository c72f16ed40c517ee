"""The names of the files the listener writes, for writer and readers alike.

Each live file keeps its name; its rotated copies are named after it in
rotation order, so that a rotation renames nothing older:
the lowest number is the oldest kept, the highest the newest,
``.N.gz`` once compressed. ``app.logview`` and ``app.statusview`` read by these names.
"""

import re

LOG_FILE_NAME = "edgesense.log"
"""The text log: every record in ``formats.LOG_FORMAT``."""

READINGS_FILE_NAME = "readings.jsonl"
"""One JSON object a line, one line per reading."""

LIVE_FILE_NAMES = (LOG_FILE_NAME, READINGS_FILE_NAME)

_ROTATED_NAME = re.compile(r"(?P<live>.+)\.(?P<index>[1-9][0-9]{0,8})(?P<gz>\.gz)?")


def rotated_name(live_name, index, compressed=False):
    """The name of ``live_name``'s rotated file number ``index``.

    >>> rotated_name("edgesense.log", 3, compressed=True)
    'edgesense.log.3.gz'
    """
    return f"{live_name}.{index}{'.gz' if compressed else ''}"


def parse_rotated(name):
    """``(live name, index, compressed)`` of a rotated file's name, else None.

    >>> parse_rotated("readings.jsonl.12.gz")
    ('readings.jsonl', 12, True)
    >>> parse_rotated("edgesense.log.1.gz.tmp") is None
    True
    """
    found = _ROTATED_NAME.fullmatch(name)
    if found is None:
        return None
    return found["live"], int(found["index"]), found["gz"] is not None


def oldest_first(names, live_name):
    """The rotated names of ``live_name`` among ``names``, oldest first.

    >>> oldest_first(["edgesense.log.10.gz", "edgesense.log", "readings.jsonl.3", "edgesense.log.9"],
    ...              "edgesense.log")
    ['edgesense.log.9', 'edgesense.log.10.gz']
    """
    rotated = [(parsed[1], name) for name in names
               if (parsed := parse_rotated(name)) is not None and parsed[0] == live_name]
    return [name for _index, name in sorted(rotated)]

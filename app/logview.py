"""``edgesense logs``: read the log folder the listener writes, across the
live file and its rotated and compressed copies, and follow it.

The listener's files, for a base name such as ``edgesense.log``: the live
``edgesense.log``, then ``edgesense.log.1`` (newest rotated) ...
``edgesense.log.N`` (oldest), each possibly gzipped as ``.N.gz``. Other names
(such as the temporary name a file has while it is compressed) are ignored.
"""

import gzip
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from logging_setup.formats import RECORD_START
from logging_setup.names import LOG_FILE_NAME, READINGS_FILE_NAME, parse_rotated

FOLLOW_POLL_SECONDS = 0.25


SENSOR_PROCESS_PREFIX = "sensor:"


@dataclass(frozen=True)
class RecordFilter:
    """Which records to show: those of one sensor (its process is
    ``sensor:<name>``; names match ignoring case, as the config's rule of
    unique names does), and those at ``level`` or above."""

    sensor: str | None = None
    level: str | None = None
    readings: bool = False

    @property
    def base(self):
        """The name of the files this filter reads."""
        return READINGS_FILE_NAME if self.readings else LOG_FILE_NAME

    def matches(self, first_line):
        """Whether the record starting with ``first_line`` is shown."""
        if self.sensor is not None and not same_sensor_name(self.sensor_of(first_line), self.sensor):
            return False
        if self.readings or self.level is None:
            return True
        found = RECORD_START.match(first_line)
        return found is not None and _level_number(found["level"]) >= _level_number(self.level)

    def sensor_of(self, first_line):
        """The name of the sensor whose record (or reading) starts with
        ``first_line``, or None."""
        if self.readings:
            try:
                reading = json.loads(first_line)
            except ValueError:
                return None
            name = reading.get("sensor") if isinstance(reading, dict) else None
            return name if isinstance(name, str) else None
        found = RECORD_START.match(first_line)
        if found and found["process"].startswith(SENSOR_PROCESS_PREFIX):
            return found["process"].removeprefix(SENSOR_PROCESS_PREFIX)
        return None

    def starts_record(self, line):
        return self.readings or RECORD_START.match(line) is not None


def same_sensor_name(name, other):
    """Whether two sensor names are one name (ignoring case); None is no name."""
    return name is not None and other is not None and name.casefold() == other.casefold()


def sensor_names(directory, record_filter):
    """The names of the sensors with records in the files ``record_filter``
    reads (the log, or the readings), as they are written there."""
    names = set()
    for path in log_files(directory, record_filter.base):
        for line in read_lines(path):
            name = record_filter.sensor_of(line)
            if name is not None:
                names.add(name)
    return names


def _level_number(name):
    number = logging.getLevelName(name)
    return number if isinstance(number, int) else 0


def log_files(directory, base):
    """The files of ``base`` in ``directory``, oldest first, live file last."""
    directory = Path(directory)
    rotated = []
    for path in directory.iterdir():
        found = parse_rotated(path.name)
        if found and found[0] == base:
            rotated.append((found[1], path))
    files = [path for _number, path in sorted(rotated, reverse=True)]
    live = directory / base
    if live.exists():
        files.append(live)
    return files


def read_lines(path):
    """The lines of a log file (gzipped or not), without line ends. A file
    that vanished meanwhile (rotated away) reads as empty."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
                return handle.read().splitlines()
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, EOFError, gzip.BadGzipFile):
        return []


def group_records(lines, record_filter):
    """Lines grouped into records: a record is its first line and the lines
    (a traceback) that follow it."""
    records = []
    for line in lines:
        if records and not record_filter.starts_record(line):
            records[-1].append(line)
        else:
            records.append([line])
    return records


def last_records(files, count, record_filter, live_lines=None):
    """The last ``count`` matching records of ``files`` (oldest first), as
    lines. ``live_lines`` replaces the content of the last file when given.
    Reads from the newest file back and stops as soon as it has enough."""
    wanted = deque()
    for index in range(len(files) - 1, -1, -1):
        if len(wanted) >= count:
            break
        is_live = index == len(files) - 1 and live_lines is not None
        lines = live_lines if is_live else read_lines(files[index])
        matching = [record for record in group_records(lines, record_filter)
                    if record_filter.matches(record[0])]
        wanted.extendleft(reversed(matching))
    kept = list(wanted)[-count:] if count else []
    return [line for record in kept for line in record]


class Follower:
    """Reads what is appended to a live file, across rotations: when the name
    points to a new file (its inode changed) the rest of the old one is read,
    then the new one from its start; a file that shrank is read again from
    its start."""

    def __init__(self, path):
        self.path = Path(path)
        self.handle = None
        self.inode = None
        self.pending = b""

    def open(self):
        """Open the live file if it exists; True when open."""
        try:
            self.handle = open(self.path, "rb")
        except FileNotFoundError:
            return False
        self.inode = os.fstat(self.handle.fileno()).st_ino
        return True

    def read_lines(self):
        """Complete lines appended since the last call."""
        if self.handle is None and not self.open():
            return []
        lines = self._read_available()
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return lines
        if current.st_ino != self.inode:
            self.close()
            if self.open():
                lines += self._read_available()
        elif current.st_size < self.handle.tell():
            self.handle.seek(0)
            self.pending = b""
            lines += self._read_available()
        return lines

    def _read_available(self):
        data = self.pending + self.handle.read()
        *complete, self.pending = data.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in complete]

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        self.pending = b""


def show_logs(directory, *, count, record_filter, follow, out, sleep=time.sleep):
    """Print the last ``count`` matching records, then (``follow``) every new
    matching record until interrupted."""
    base = record_filter.base
    follower = Follower(Path(directory) / base)
    live_lines = None
    if follow and follower.open():
        live_lines = follower.read_lines()
    files = log_files(directory, base)
    if live_lines is not None and (not files or files[-1] != follower.path):
        files.append(follower.path)
    _write(out, last_records(files, count, record_filter, live_lines))
    if not follow:
        return
    showing = False
    while True:
        shown = []
        for line in follower.read_lines():
            if record_filter.starts_record(line):
                showing = record_filter.matches(line)
            if showing:
                shown.append(line)
        _write(out, shown)
        sleep(FOLLOW_POLL_SECONDS)


def _write(out, lines):
    if lines:
        out.write("".join(line + "\n" for line in lines))
        out.flush()

"""``edgesense logs``: read the log folder the listener writes, across the
live file and its rotated and compressed copies, and follow it.

The listener's files, for a base name such as ``edgesense.log``: the live
``edgesense.log``, and its rotated files numbered in rotation order, the
highest the newest (``logging_setup.names``), each possibly gzipped as
``.N.gz``. Other names (such as the temporary name a file has while it is
compressed) are ignored.
"""

import gzip
import json
import logging
import os
import sys
import time
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from app.readfile import NotRegularFile, kind_of, open_regular
from logging_setup.formats import RECORD_START, escape
from logging_setup.names import LOG_FILE_NAME, READINGS_FILE_NAME, parse_rotated

FOLLOW_POLL_SECONDS = 0.25
FOLLOW_READ_BYTES = 1 << 20
"""At most this much of the live file is read per poll while following."""

BLOCK_BYTES = 65536
"""Files are read in blocks of this size."""

MAX_LINE_BYTES = 65536
"""A longer line is shown cut, with CUT_MARK (the listener writes none)."""

MAX_RECORD_LINES = 1000
"""A record shows at most this many lines (its first and its traceback)."""

CUT_MARK = " [line cut]"


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


def _level_number(name):
    number = logging.getLevelName(name)
    return number if isinstance(number, int) else 0


class Notes:
    """What a reader met that it could not show: a damaged archive (which
    makes ``logs`` fail), an entry that is not a file (skipped). One line
    each, on ``err``; none without one (a reader that only looks)."""

    def __init__(self, err=None):
        self.err = err
        self.damaged = False
        self._said = set()

    def skipped(self, path, why):
        self._say(f"edgesense: skipping {path}: {why}")

    def damage(self, path, error):
        self.damaged = True
        self._say(f"edgesense: {path} is damaged ({error}); showing what is readable")

    def _say(self, line):
        if line not in self._said:
            self._said.add(line)
            if self.err is not None:
                print(line, file=self.err, flush=True)


def log_files(directory, base, notes):
    """The files of ``base`` in ``directory``, oldest first, live file last.
    A rotated name that is not a regular file is skipped with a note."""
    rotated = []
    with os.scandir(directory) as entries:
        for entry in entries:
            found = parse_rotated(entry.name)
            if not found or found[0] != base:
                continue
            if entry.is_file(follow_symlinks=False):
                rotated.append((found[1], Path(entry.path)))
            else:
                notes.skipped(entry.path, f"not a regular file ({kind_of(entry.path)})")
    files = [path for _number, path in sorted(rotated)]
    live = Path(directory) / base
    if os.path.lexists(live):
        files.append(live)
    return files


def group_records(lines, record_filter):
    """Lines grouped into records: a record is its first line and the lines
    (a traceback) that follow it, at most MAX_RECORD_LINES."""
    records = []
    for record in _records_forward(lines, record_filter):
        records.append(record)
    return records


def _records_forward(lines, record_filter):
    record = None
    for line in lines:
        if record is not None and not record_filter.starts_record(line):
            if len(record) < MAX_RECORD_LINES:
                record.append(line)
            continue
        if record is not None:
            yield record
        record = [line]
    if record is not None:
        yield record


def _records_backward(lines, record_filter):
    """Records from lines read last first; each record's lines in order."""
    following = deque(maxlen=MAX_RECORD_LINES - 1)
    for line in lines:
        if record_filter.starts_record(line):
            yield [line, *reversed(following)]
            following.clear()
        else:
            following.append(line)
    if following:
        yield list(reversed(following))


def last_records(files, count, record_filter, notes, live_end=None):
    """The last ``count`` matching records of ``files`` (oldest first), as
    lines. Plain files are read from their end in blocks, archives streamed,
    so memory stays bounded whatever the size of a file or a line; reading
    stops as soon as there are enough. ``live_end`` bounds the last file."""
    wanted = []
    for index in range(len(files) - 1, -1, -1):
        if len(wanted) >= count:
            break
        end = live_end if index == len(files) - 1 else None
        wanted = _last_records_of(files[index], count - len(wanted), record_filter, notes, end) + wanted
    return [line for record in wanted for line in record]


def _last_records_of(path, count, record_filter, notes, end=None):
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        return []  # rotated away meanwhile
    except NotRegularFile as error:
        notes.skipped(path, error.strerror)
        return []
    with handle:
        if path.name.endswith(".gz"):
            lines = _lines_forward(path, handle, notes)
            kept = deque((record for record in _records_forward(lines, record_filter)
                          if record_filter.matches(record[0])), maxlen=count)
            return list(kept)
        end = os.fstat(handle.fileno()).st_size if end is None else end
        kept = []
        for record in _records_backward(_lines_backward(handle, end), record_filter):
            if record_filter.matches(record[0]):
                kept.append(record)
                if len(kept) == count:
                    break
        return kept[::-1]


def _lines_backward(handle, end):
    """The lines of a binary file before offset ``end``, the last first,
    split at ``\\n`` only and each cut to MAX_LINE_BYTES."""
    position, tail, first = end, b"", True
    while position > 0:
        start = max(0, position - BLOCK_BYTES)
        handle.seek(start)
        pieces = handle.read(position - start).split(b"\n")
        position = start
        pieces[-1] = (pieces[-1] + tail)[:MAX_LINE_BYTES + 1]
        tail = pieces.pop(0)
        for piece in reversed(pieces):
            if not (first and piece == b""):
                yield _decoded(piece)
            first = False
    if tail or not first:
        yield _decoded(tail)


def _lines_forward(path, handle, notes):
    """The lines of an archive, each cut to MAX_LINE_BYTES; damage ends
    them with a note."""
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as unpacked:
            while line := unpacked.readline(MAX_LINE_BYTES + 1):
                if line.endswith(b"\n"):
                    yield _decoded(line[:-1])
                    continue
                yield _decoded(line)
                while line and not line.endswith(b"\n"):
                    line = unpacked.readline(BLOCK_BYTES)
    except (OSError, EOFError, zlib.error) as error:
        notes.damage(path, error)


def _decoded(line):
    text = line[:MAX_LINE_BYTES].decode("utf-8", errors="replace")
    return text + CUT_MARK if len(line) > MAX_LINE_BYTES else text


def sensor_names(directory, record_filter):
    """The names of the sensors with records in the files ``record_filter``
    reads (the log, or the readings), as they are written there."""
    names = set()
    notes = Notes()
    for path in log_files(directory, record_filter.base, notes):
        for line in _every_line(path, notes):
            name = record_filter.sensor_of(line)
            if name is not None:
                names.add(name)
    return names


def _every_line(path, notes):
    try:
        handle = open_regular(path)
    except (FileNotFoundError, NotRegularFile):
        return
    with handle:
        if path.name.endswith(".gz"):
            yield from _lines_forward(path, handle, notes)
        else:
            yield from _lines_backward(handle, os.fstat(handle.fileno()).st_size)


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
            self.handle = open_regular(self.path)
        except (FileNotFoundError, NotRegularFile):
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
            lines += self._read_rest()
            self.close()
            if self.open():
                lines += self._read_available()
        elif current.st_size < self.handle.tell():
            self.handle.seek(0)
            self.pending = b""
            lines += self._read_available()
        return lines

    def _read_available(self):
        data = self.pending + self.handle.read(FOLLOW_READ_BYTES)
        *complete, self.pending = data.split(b"\n")
        self.pending = self.pending[:MAX_LINE_BYTES + 1]
        return [_decoded(line) for line in complete]

    def _read_rest(self):
        """The lines left in a file that was rotated away."""
        lines = []
        while chunk := self._read_available():
            lines += chunk
        return lines

    def skip_to(self, offset):
        """Follow from ``offset`` on (what comes before is shown already)."""
        self.handle.seek(offset)
        self.pending = b""

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        self.pending = b""


def show_logs(directory, *, count, record_filter, follow, out, err=sys.stderr, sleep=time.sleep):
    """Print the last ``count`` matching records, then (``follow``) every new
    matching record until interrupted. Returns False when a file was
    damaged (what was readable is printed, and a note names the file)."""
    notes = Notes(err)
    base = record_filter.base
    follower = Follower(Path(directory) / base)
    live_end = None
    if follow and follower.open():
        live_end = _complete_end(follower.handle)
        follower.skip_to(live_end)
    files = log_files(directory, base, notes)
    if live_end is not None and (not files or files[-1] != follower.path):
        files.append(follower.path)
    _write(out, last_records(files, count, record_filter, notes, live_end))
    if not follow:
        return not notes.damaged
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


def _complete_end(handle):
    """The offset just after the last newline of an open file."""
    end = os.fstat(handle.fileno()).st_size
    while end > 0:
        start = max(0, end - BLOCK_BYTES)
        handle.seek(start)
        newline = handle.read(end - start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _write(out, lines):
    """Lines as they are, but with no raw control character for the terminal."""
    if lines:
        out.write("".join(escape(line) + "\n" for line in lines))
        out.flush()

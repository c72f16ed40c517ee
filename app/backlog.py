"""The publisher's backlog: ``readings.jsonl`` and its rotated copies, read
from a small persistent cursor of what the broker acknowledged.

The readings file is already durable, ordered and inside the storage
budget, so the backlog is not a second copy of it. A file is known by its
*key*, a hash of its first line: rotation links a file under a new name
and compression rewrites it, but neither changes its content, so
``(key, offset, line)``
names a reading wherever its file has gone. When the budget deletes a file
before its readings were acknowledged, the readings it held are counted as
lost.

Every file is opened relative to a descriptor of the log folder with
``O_NOFOLLOW``; an entry that is not a regular file is stepped around. The
cursor is replaced atomically (a temporary name made with ``O_EXCL``,
``fsync``, rename, ``fsync`` of the folder), so a power cut leaves the old
cursor or the new one, and redelivers at most what was acknowledged since.
"""

import errno
import gzip
import hashlib
import json
import logging
import os
import stat
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from app.logview import Notes, log_files
from logging_setup.names import READINGS_FILE_NAME as READINGS_FILE, parse_rotated

log = logging.getLogger(__name__)

CURSOR_FILE = "publisher.cursor.json"
CURSOR_TEMP = CURSOR_FILE + ".tmp"
KEY_HEX_DIGITS = 12
READ_CHUNK_BYTES = 64 * 1024
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass(frozen=True)
class Position:
    """Just after line ``line - 1`` (``offset`` bytes into the content) of the
    file with ``key``; ``key`` None is the start of the oldest file."""

    key: str | None = None
    offset: int = 0
    line: int = 0


@dataclass(frozen=True)
class Line:
    """One complete line read from the backlog: its id parts, its text, and
    the position just after it."""

    key: str
    number: int
    text: bytes
    after: Position


def file_key(first_line):
    return hashlib.sha256(first_line).hexdigest()[:KEY_HEX_DIGITS]


class ReadingsFile:
    """One open readings file (live or rotated, gzipped or not)."""

    def __init__(self, fd, name, compressed):
        self.fd = fd
        self.name = name
        self.compressed = compressed
        self.inode = os.fstat(fd).st_ino
        self._stream = None
        self._stream_offset = 0
        self.key = self._first_line_key()

    def _first_line_key(self):
        head = self.read_from(0, 4096)
        end = head.find(b"\n")
        return file_key(head[:end + 1]) if end >= 0 else None

    def read_from(self, offset, size=READ_CHUNK_BYTES):
        """Up to ``size`` bytes of the content from ``offset`` (decompressed)."""
        if not self.compressed:
            return os.pread(self.fd, size, offset)
        if self._stream is None or self._stream_offset > offset:
            self._reopen_stream()
        try:
            if self._stream_offset < offset:
                self._stream.seek(offset)
            data = self._stream.read(size)
        except (EOFError, gzip.BadGzipFile, OSError, ValueError):
            return b""  # a torn archive: what it holds is read as far as it goes
        self._stream_offset = offset + len(data)
        return data

    def _reopen_stream(self):
        if self._stream is not None:
            self._stream.close()
        os.lseek(self.fd, 0, os.SEEK_SET)  # the duplicate shares the offset
        self._stream = gzip.GzipFile(fileobj=os.fdopen(os.dup(self.fd), "rb"), mode="rb")
        self._stream_offset = 0

    def size_on_disk(self):
        return os.fstat(self.fd).st_size

    def close(self):
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class LogFolder:
    """A descriptor of the log folder, opened again when the folder is
    deleted and made anew (the listener recreates it)."""

    def __init__(self, path):
        self.path = Path(path)
        self.fd = None

    def descriptor(self):
        """The folder's descriptor, or None while it does not exist."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return None
        if self.fd is not None and os.fstat(self.fd).st_ino != current.st_ino:
            os.close(self.fd)
            self.fd = None
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
        return self.fd

    def inode(self, name):
        """The inode of ``name`` in the folder (not following a link), or None."""
        fd = self.descriptor()
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False).st_ino if fd is not None else None
        except FileNotFoundError:
            return None

    def open(self, name, missing_ok=True):
        """``name`` in the folder if it is a regular file, else None; a
        missing one raises FileNotFoundError unless ``missing_ok``."""
        fd = self.descriptor()
        if fd is None:
            return None
        try:
            file_fd = os.open(name, OPEN_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.EACCES):
                log.warning("cannot open %s: %s", self.path / name, error.strerror)
            return None
        if not _is_regular(file_fd):
            os.close(file_fd)
            return None
        return file_fd

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _is_regular(fd):
    return stat.S_ISREG(os.fstat(fd).st_mode)


LISTING_ATTEMPTS = 5
"""Listings made in a row while rotations run through them; past this the
backlog waits for the next look (at most a second later) to go on."""


def open_readings_files(folder):
    """The readings files present now, oldest first, the live file last, one
    per key (a file linked under two names, or seen both plain and gzipped
    mid-compression, is one file); a file without a complete line yet has no
    key and is left out.

    Returns the files and whether the listing is known whole: only then may
    reading go from one file to the next, or a file missing count as
    deleted. A listing that a rotation or a compression ran through could
    miss the file being linked or renamed; it is whole when the folder read
    twice gave the same names, every one still there when opened, with the
    same live file throughout."""
    for attempt in range(LISTING_ATTEMPTS):
        files, settled = _open_listed(folder)
        if settled or attempt == LISTING_ATTEMPTS - 1:
            return files, settled
        for opened in files.values():
            opened.close()
    raise AssertionError("unreachable")


def _names(folder):
    if not folder.path.is_dir():
        return []
    return [path.name for path in log_files(folder.path, READINGS_FILE, Notes())]


def _open_listed(folder):
    """The files of one listing, and whether it stayed steady."""
    before = folder.inode(READINGS_FILE)
    names = _names(folder)
    files, steady = OrderedDict(), True
    for name in names:
        try:
            fd = folder.open(name, missing_ok=False)
        except FileNotFoundError:
            steady = False
            continue
        if fd is None:
            continue
        rotated = parse_rotated(name)
        opened = ReadingsFile(fd, name, rotated is not None and rotated[2])
        if opened.key is not None and opened.key in files and name == READINGS_FILE:
            files.pop(opened.key).close()  # the live file linked as its rotated name too: it is the live one
        elif opened.key is None or opened.key in files:
            opened.close()
            continue
        files[opened.key] = opened
    steady = steady and _names(folder) == names and folder.inode(READINGS_FILE) == before
    return files, steady


def count_lines(readings_file, start=0):
    """Complete lines of a file from ``start``, and the offset after the last."""
    lines, offset = 0, start
    while True:
        data = readings_file.read_from(offset, 1 << 20)
        end = data.rfind(b"\n")
        if end < 0:
            return lines, offset
        lines += data.count(b"\n", 0, end + 1)
        offset += end + 1


@dataclass
class CursorState:
    """What the publisher keeps across restarts: the acknowledged position,
    the readings lost to the budget so far, the line counts of rotated files
    not yet acknowledged (to count what the budget deletes), and the
    discovery topics announced (to clear those of removed sensors). With
    them, for ``edgesense status``, what the publisher last said of itself
    (``status``: connected, backlog, last acknowledged reading...)."""

    acked: Position = Position()
    lost: int = 0
    counts: dict = None
    announced: tuple = ()
    status: dict = None

    def to_json(self):
        return json.dumps({"acked": asdict(self.acked), "lost": self.lost, "counts": self.counts or {},
                           "announced": list(self.announced), "status": self.status or {}},
                          separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data):
        document = json.loads(data)
        acked = document["acked"]
        return cls(Position(acked["key"], int(acked["offset"]), int(acked["line"])), int(document["lost"]),
                   {str(key): int(count) for key, count in document.get("counts", {}).items()},
                   tuple(str(topic) for topic in document.get("announced", ())))


def load_cursor(folder):
    """The saved cursor, or a fresh one (start at the oldest reading) when
    there is none or it cannot be read (said once in the log)."""
    fd = folder.open(CURSOR_FILE)
    if fd is None:
        return CursorState(counts={})
    try:
        with os.fdopen(fd, "rb") as file:
            return CursorState.from_json(file.read(1 << 20))
    except (ValueError, KeyError, TypeError, OSError) as error:
        log.warning("the publisher's cursor %s is unreadable (%s): every reading still in the "
                    "folder is sent again, with the same ids", folder.path / CURSOR_FILE, error)
        return CursorState(counts={})


def save_cursor(folder, state):
    """Replace the cursor atomically and durably. False (logged) on failure."""
    fd = folder.descriptor()
    if fd is None:
        return False
    try:
        _write_new(fd, CURSOR_TEMP, state.to_json())
        os.rename(CURSOR_TEMP, CURSOR_FILE, src_dir_fd=fd, dst_dir_fd=fd)
        os.fsync(fd)
    except OSError as error:
        log.warning("cannot save the publisher's cursor in %s: %s", folder.path, error)
        try:
            os.unlink(CURSOR_TEMP, dir_fd=fd)
        except OSError:
            pass
        return False
    return True


def _write_new(dir_fd, name, data):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        file_fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
    except FileExistsError:  # left by a crash (or planted): never written through
        os.unlink(name, dir_fd=dir_fd)
        file_fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(file_fd, view):]
        os.fsync(file_fd)
    finally:
        os.close(file_fd)


class Backlog:
    """The readings not yet acknowledged, read in order from the cursor.

    ``lines()`` hands out what follows the last line handed out;
    ``acknowledge(line.after)`` moves the durable cursor (saved by
    ``save()``); ``rewind()`` goes back to it, so what was sent but not
    acknowledged is sent again, with the same ids.
    """

    def __init__(self, log_dir):
        self.folder = LogFolder(log_dir)
        self.state = load_cursor(self.folder)
        self.saved = self.state.to_json()
        self.read_at = self.state.acked
        self.files = OrderedDict()
        self.settled = False
        self.known = OrderedDict((key, count) for key, count in self.state.counts.items())
        self._live = (None, None)
        self._live_count = (None, 0, 0)

    # --- the files ---

    def refresh(self):
        """Notice a rotation or a new live file: one stat when nothing changed."""
        if not self.settled or self.folder.inode(READINGS_FILE) != self._live[0] or self._live[1] is None:
            self._relist()

    def _relist(self):
        for opened in self.files.values():
            opened.close()
        self.files, self.settled = open_readings_files(self.folder)
        live = next(reversed(self.files.values()), None)
        live = live if live is not None and live.name == READINGS_FILE else None
        self._live = (live.inode, live.key) if live is not None else (self.folder.inode(READINGS_FILE), None)
        for key, opened in self.files.items():
            if key not in self.known:
                self.known[key] = None
            if opened is not live and self.known[key] is None:
                self.known[key] = count_lines(opened)[0]
        self._settle(self.state.acked)

    def _settle(self, acked):
        """When the budget deleted the cursor's file, count what it and the
        files deleted after it held as lost, and go on from the oldest file
        left."""
        if acked.key is None or acked.key in self.files or not self.files or not self.settled:
            self._forget_before(acked.key)
            return
        keys = list(self.known)
        start = keys.index(acked.key) if acked.key in keys else None
        lost, resume, uncounted = 0, next(iter(self.files)), start is None
        for key in (keys[start:] if start is not None else ()):
            if key in self.files:
                resume = key
                break
            count = self.known[key] if self.known[key] is not None else self._partial_count(key)
            uncounted = uncounted or count is None
            lost += max((count or 0) - (acked.line if key == acked.key else 0), 0)
        self.state.lost += lost
        log.warning("%s%d readings were deleted by the storage budget before the broker acknowledged "
                    "them (%d lost in all)", "at least " if uncounted else "", lost, self.state.lost)
        self.state.acked = Position(resume)
        self.read_at = self.state.acked if self.read_at.key not in self.files else self.read_at
        self._forget_before(resume)

    def _partial_count(self, key):
        """Lines counted so far in a live file that is gone, or None."""
        counted_key, _offset, lines = self._live_count
        return lines if counted_key == key else None

    def _forget_before(self, key):
        if key is None or key not in self.known:
            return
        while next(iter(self.known)) != key:
            self.known.popitem(last=False)

    # --- reading ---

    def lines(self, limit):
        """Up to ``limit`` complete lines after the last handed out."""
        found = []
        while len(found) < limit:
            position = self._resolved(self.read_at)
            if position is None:
                break
            more = self._lines_in(self.files[position.key], position, limit - len(found))
            if more:
                found += more
                self.read_at = more[-1].after
            elif not self._step_to_next_file(position):
                break
        return found

    def _resolved(self, position):
        if position.key is None:
            return Position(next(iter(self.files))) if self.files else None
        if position.key not in self.files:
            self._relist()
            if position.key not in self.files:
                return self._resolved(self.state.acked) if self.state.acked != position else None
        return position

    @staticmethod
    def _lines_in(opened, position, limit):
        data = opened.read_from(position.offset)
        found, start, number = [], 0, position.line
        while len(found) < limit:
            end = data.find(b"\n", start)
            if end < 0:
                break
            after = Position(opened.key, position.offset + end + 1, number + 1)
            found.append(Line(opened.key, number, data[start:end], after))
            start, number = end + 1, number + 1
        return found

    def _step_to_next_file(self, position):
        """Go on at the start of the file after ``position``'s, when the
        listing is whole (else a file rotated away meanwhile could be skipped)."""
        keys = list(self.files)
        index = keys.index(position.key)
        if index + 1 >= len(keys) or not self.settled:
            return False
        self.read_at = Position(keys[index + 1])
        return True

    # --- acknowledgements ---

    def acknowledge(self, position):
        self.state.acked = position
        self._forget_before(position.key)

    def rewind(self):
        """Hand out again everything after the acknowledged position."""
        self.read_at = self.state.acked

    def save(self):
        """Save the cursor when it changed since the last save."""
        self.state.counts = {key: count for key, count in self.known.items() if count is not None}
        data = self.state.to_json()
        if data != self.saved and save_cursor(self.folder, self.state):
            self.saved = data

    def report(self, status):
        """What ``edgesense status`` shows of the publisher, saved with the cursor."""
        self.state.status = dict(status, lost=self.state.lost)

    def announce(self, topics):
        self.state.announced = tuple(sorted(topics))

    # --- what a person sees ---

    def pending(self):
        """Readings not yet acknowledged."""
        acked = self._resolved(self.state.acked)
        if acked is None:
            return 0
        total, counting = -acked.line, False
        for key, opened in self.files.items():
            counting = counting or key == acked.key
            if counting:
                total += self.known.get(key) if self.known.get(key) is not None else self._count_live(opened)
        return max(total, 0)

    def _count_live(self, opened):
        key, offset, lines = self._live_count
        if key != opened.key:
            offset, lines = 0, 0
        more, offset = count_lines(opened, offset)
        self._live_count = (opened.key, offset, lines + more)
        return lines + more

    def oldest_pending(self):
        """The oldest reading not yet acknowledged (a dict), or None."""
        acked = self._resolved(self.state.acked)
        if acked is None:
            return None
        saved = self.read_at
        self.read_at = acked
        try:
            first = self.lines(1)
        finally:
            self.read_at = saved
        return _parsed(first[0].text) if first else None

    def close(self):
        for opened in self.files.values():
            opened.close()
        self.files = OrderedDict()
        self.folder.close()


def _parsed(text):
    try:
        reading = json.loads(text)
    except ValueError:
        return None
    return reading if isinstance(reading, dict) else None


def publisher_status(log_dir):
    """What the publisher last saved of itself in ``log_dir`` (a dict), or
    None when it never ran there. Reads the folder without following links."""
    folder = LogFolder(log_dir)
    try:
        fd = folder.open(CURSOR_FILE)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as file:
            status = json.loads(file.read(1 << 20)).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    finally:
        folder.close()
    return status if isinstance(status, dict) and status else None

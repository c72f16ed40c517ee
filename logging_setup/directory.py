"""The log directory: live files, their rotation, and the storage budget (L7, L8).

Rotated files are named after their live file: ``edgesense.log.1`` is the
newest, ``.2`` older, and so on (``.N.gz`` when compressed). The budget covers
every regular file in the directory: both live files, every rotated and
temporary file, and the room reserved for one file another process writes
there (the supervisor's state file), whether it exists yet or not. The oldest rotated file goes first, whichever live file it came from.

Sizes are counted here, not asked of the file system per record: the
directory is scanned at start and after each rotation, and, while lines are
dropped for want of room, at most once per ``RESCAN_SECONDS``, so writing
resumes by itself when other files make room.
"""

import errno
import gzip
import os
import shutil
import sys
import time
from dataclasses import dataclass

from logging_setup.names import parse_rotated, rotated_name

GZIP_LEVEL = 6
"""Nearly the ratio of level 9 at a fraction of its time on a small board."""

RESCAN_SECONDS = 1.0
"""While lines do not fit, the directory is scanned again at most this often."""

TEMP_SUFFIX = ".tmp"
FRESH_SUFFIX = ".new"


def gzip_bound(size):
    """An upper bound of the size of ``size`` bytes once gzip-compressed
    (deflate's stored blocks plus the header, as zlib's deflateBound)."""
    return size + (size >> 12) + (size >> 14) + 1024


@dataclass(frozen=True)
class RotatedFile:
    path: str
    live_name: str
    index: int
    compressed: bool
    size: int
    mtime_ns: int

    def renamed(self, index):
        return os.path.join(os.path.dirname(self.path), rotated_name(self.live_name, index, self.compressed))


class LiveFile:
    """One live file: bytes are appended in batches with one ``os.write`` per
    flush, and its size is counted here, so no record costs a stat.

    A write that fails (a full disk) never raises: it is reported once per
    episode, that batch is lost, and the next flush tries again, so writing
    resumes by itself when space returns.
    """

    def __init__(self, directory, name):
        self.directory = directory
        self.name = name
        self.path = os.path.join(directory.path, name)
        self._pending = []
        self._failing = False
        self._lost_records = 0
        self._last_error = None
        self._fd = _open_for_append(self.path)
        self.size = os.fstat(self._fd).st_size

    def append(self, data):
        """Queue ``data`` (one whole line) for the next flush, rotating first
        when it would not fit. Returns False when the budget cannot hold it."""
        if not self.directory.make_room(self, len(data)):
            return False
        self._pending.append(data)
        self.size += len(data)
        return True

    def flush(self):
        """Write everything appended since the last flush."""
        if not self._pending or self._fd is None:
            return
        lines, self._pending = self._pending, []
        data = b"".join(lines)
        start = self.size - len(data)
        written = self._write(data)
        if written < len(data):
            kept = self._cut_torn_line(start, data[:written])
            self.size = start + kept
            self._lost_records += len(lines) - data[:kept].count(b"\n")
            self._enter_failing()
        elif self._failing:
            self._leave_failing()

    def _cut_torn_line(self, start, written):
        """Truncate a partly written line off the end of the file, so the
        next line starts on a line of its own. Returns the bytes kept."""
        kept = written.rfind(b"\n") + 1
        if kept < len(written):
            try:
                os.ftruncate(self._fd, start + kept)
            except OSError:
                return len(written)
        return kept

    def start_fresh(self):
        """Put an empty file under the live name and write there from now on.

        The fresh file is created under a temporary name and renamed over
        the live one, so the live name never vanishes (``tail -F``)."""
        fresh = self.path + FRESH_SUFFIX
        fd = os.open(fresh, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.rename(fresh, self.path)
        except OSError:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd = fd
        self.size = 0

    def close(self):
        """Flush and close. Idempotent."""
        if self._fd is None:
            return
        self.flush()
        os.close(self._fd)
        self._fd = None

    def _write(self, data):
        view = memoryview(data)
        written = 0
        while written < len(data):
            try:
                count = os.write(self._fd, view[written:])
            except OSError as error:
                self._last_error = error
                return written
            if count == 0:
                return written
            written += count
        return written

    def _enter_failing(self):
        if not self._failing:
            self._failing = True
            self.directory.report(f"cannot write {self.path}: {self._last_error}; "
                                  "dropping its lines until writing works again")

    def _leave_failing(self):
        self._failing = False
        lost, self._lost_records = self._lost_records, 0
        self.directory.report(f"writing {self.path} again; {lost} records were lost meanwhile")


class LogDirectory:
    """Owns the live files of one directory and keeps the directory within
    ``max_total_bytes``. ``compressor(source, target)`` writes the
    compressed copy (``gzip_file`` unless a test passes another).
    ``reserved`` is ``(name, bytes)``: a file of the directory that another
    process writes, and the room kept for it.

    >>> import tempfile
    >>> directory = LogDirectory(tempfile.mkdtemp(), 1024, 8192, compress=True)
    >>> live = directory.open_live("edgesense.log")
    >>> for n in range(40):
    ...     _ = live.append(b"a line of the log, number %02d\\n" % n)
    >>> live.close()
    >>> sorted(os.listdir(directory.path))
    ['edgesense.log', 'edgesense.log.1.gz']
    """

    def __init__(self, path, max_file_bytes, max_total_bytes, compress=True, report=None, compressor=None,
                 reserved=(None, 0)):
        self.path = os.fspath(path)
        self._reserved_name, self._reserved_bytes = reserved
        self._compressor = compressor or gzip_file
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.compress = compress
        self._report = report or _report_on_stderr
        self._live = {}
        self._rotated = []
        self._rotated_bytes = 0
        self._other_bytes = 0
        self._foreign_bytes = 0
        self._last_scan = time.monotonic()
        self._budget_failing = False
        self._lines_dropped = 0
        self._rotation_failing = False
        os.makedirs(self.path, exist_ok=True)

    def open_live(self, name):
        """The live file ``name``, created if missing. Cleans up what an
        interrupted rotation of it left behind."""
        self._remove_leftovers(name)
        live = LiveFile(self, name)
        self._live[name] = live
        self._scan()
        return live

    def used_bytes(self):
        """Bytes the directory holds, by this object's count."""
        live_bytes = 0
        for live in self._live.values():
            live_bytes += live.size
        return live_bytes + self._rotated_bytes + self._other_bytes

    def make_room(self, live, size):
        """Rotate ``live`` if ``size`` more bytes would overfill it, then
        delete the oldest rotated files until ``size`` more bytes fit in the
        budget. False when even that cannot make room."""
        if live.size and live.size + size > self.max_file_bytes:
            self.rotate(live)
        fits = self._fit(live, size)
        if not fits and time.monotonic() - self._last_scan >= RESCAN_SECONDS:
            self._scan()
            fits = self._fit(live, size)
        if fits and self._budget_failing:
            self._leave_budget_failing()
        elif not fits:
            self._lines_dropped += 1
            if not self._budget_failing:
                self._enter_budget_failing(size)
        return fits

    def _enter_budget_failing(self, size):
        self._budget_failing = True
        self.report(f"a {size}-byte line does not fit in the {self.max_total_bytes}-byte budget "
                    f"of {self.path}: other files in it use {self._foreign_bytes} bytes; "
                    "dropping lines until there is room")

    def _leave_budget_failing(self):
        self._budget_failing = False
        dropped, self._lines_dropped = self._lines_dropped, 0
        self.report(f"room in the budget of {self.path} again; {dropped} lines were dropped meanwhile")

    def rotate(self, live, compress=None):
        """Make ``live``'s content the newest rotated file and start it afresh.
        Returns False when the rotation failed (reported once per episode)."""
        live.flush()
        first = f"{live.path}.1"
        try:
            self._shift(live.name)
            _link_or_rename(live.path, first)
            live.start_fresh()
        except OSError as error:
            if not self._rotation_failing:
                self._rotation_failing = True
                self.report(f"cannot rotate {live.path}: {error}")
            return False
        finally:
            self._scan()
        self._rotation_failing = False
        if (self.compress if compress is None else compress):
            self._compress(first)
        return True

    def report(self, message):
        self._report(f"edgesense: {message}")

    def _fit(self, live, size):
        """Make room for ``size`` more bytes in ``live``, unless even deleting
        every rotated file could not: then delete nothing and return False."""
        while self.used_bytes() + size > self.max_total_bytes:
            if self._floor(live) + size > self.max_total_bytes:
                return False
            if self._rotated:
                self._delete(self._oldest())
            elif not (live.size and self.rotate(live, compress=False)):
                return False
        return True

    def _floor(self, live):
        """Bytes no rotation of ``live`` or deletion can free: other files
        and the other live files."""
        others = sum(other.size for other in self._live.values() if other is not live)
        return self._other_bytes + others

    def _oldest(self, keep=None):
        candidates = [rotated for rotated in self._rotated if rotated.path != keep]
        if not candidates:
            return None
        return min(candidates, key=lambda rotated: (rotated.mtime_ns, -rotated.index))

    def _delete(self, rotated):
        try:
            os.unlink(rotated.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            # Forgotten until the next scan, so the budget loop ends.
            self.report(f"cannot delete {rotated.path}: {error}")
        self._rotated.remove(rotated)
        self._rotated_bytes -= rotated.size

    def _shift(self, live_name):
        own = [rotated for rotated in self._rotated if rotated.live_name == live_name]
        for rotated in sorted(own, key=lambda rotated: rotated.index, reverse=True):
            os.rename(rotated.path, rotated.renamed(rotated.index + 1))

    def _compress(self, path):
        """Compress through a temporary name, then rename, so a power cut
        never leaves a torn archive under a final name. Room for the
        temporary file is made first; without room the file stays plain."""
        if not self._room_to_compress(path):
            return
        temp = f"{path}.gz{TEMP_SUFFIX}"
        try:
            self._compressor(path, temp)
            os.rename(temp, f"{path}.gz")
            os.unlink(path)
        except OSError as error:
            _unlink_quietly(temp)
            self.report(f"cannot compress {path}: {error}; leaving it uncompressed")
        finally:
            self._scan()

    def _room_to_compress(self, path):
        try:
            size = os.stat(path).st_size
        except OSError:
            return False
        bound = gzip_bound(size)
        if self.used_bytes() - self._rotated_bytes + size + bound > self.max_total_bytes:
            return False
        while self.used_bytes() + bound > self.max_total_bytes:
            oldest = self._oldest(keep=path)
            if oldest is None:
                return False
            self._delete(oldest)
        return True

    def _scan(self):
        """Count the rotated files and every other regular file afresh."""
        rotated, other_bytes, state_bytes = [], 0, 0
        with os.scandir(self.path) as entries:
            for entry in entries:
                if entry.name in self._live or not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
                match = parse_rotated(entry.name)
                if match and match[0] in self._live:
                    rotated.append(RotatedFile(entry.path, *match, info.st_size, info.st_mtime_ns))
                elif entry.name == self._reserved_name:
                    state_bytes = info.st_size
                else:
                    other_bytes += info.st_size
        self._rotated = rotated
        self._rotated_bytes = sum(file.size for file in rotated)
        self._foreign_bytes = other_bytes + state_bytes
        self._other_bytes = other_bytes + max(state_bytes, self._reserved_bytes)
        self._last_scan = time.monotonic()

    def _remove_leftovers(self, live_name):
        """Temporary files of an interrupted rotation, and a plain rotated file
        whose compressed copy was already renamed into place."""
        with os.scandir(self.path) as entries:
            names = {entry.name for entry in entries}
        for name in names:
            if name == live_name + FRESH_SUFFIX or _is_temp_of(name, live_name) or (
                    _is_plain_rotated_of(name, live_name) and f"{name}.gz" in names):
                _unlink_quietly(os.path.join(self.path, name))


def _is_temp_of(name, live_name):
    match = parse_rotated(name.removesuffix(TEMP_SUFFIX))
    return name.endswith(TEMP_SUFFIX) and match is not None and match[0] == live_name


def _is_plain_rotated_of(name, live_name):
    match = parse_rotated(name)
    return match is not None and match[0] == live_name and not match[2]


def gzip_file(source, target):
    """Write ``source`` gzip-compressed to ``target`` and sync it to disk."""
    with open(source, "rb") as plain, open(target, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw) as packed:
            shutil.copyfileobj(plain, packed, 256 * 1024)
        raw.flush()
        os.fsync(raw.fileno())


def _link_or_rename(live, rotated):
    """Link, so the live name stays; file systems without hard links (vfat)
    get a rename, and the live name is missing for a moment."""
    try:
        os.link(live, rotated)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP):
            raise
        os.rename(live, rotated)


def _open_for_append(path):
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _report_on_stderr(message):
    try:
        print(message, file=sys.stderr, flush=True)
    except Exception:
        pass

"""The log directory: live files, their rotation, and the storage budget (L7, L8, L11).

Rotated files are numbered in the order they were rotated, one count for the
whole folder: ``edgesense.log.1`` is older than ``readings.jsonl.2``, which
is older than ``edgesense.log.3`` (``.N.gz`` once compressed). A rotation
renames nothing that is already rotated, so it costs the same with 10 or
10,000 rotated files, and age is this number, never a file's time (boards
without a real-time clock jump). The budget covers every regular file in
the directory: both live files, every rotated and temporary file, and the
room ``reserved`` for one file another process writes there.

Sizes and the rotated files are kept here, not asked of the file system per
record: the directory is listed at start, and again while lines come at
most once per ``RESCAN_SECONDS``, so the count of other files stays true
and writing resumes by itself when they make room.
"""

import errno
import gzip
import os
import shutil
import stat
import sys
import time
from dataclasses import dataclass

from logging_setup.compression import BackgroundCompressor, CompressionJob
from logging_setup.folder import TEMP_SUFFIXES, FILE_MODE, ForeignEntry, Folder, describe, is_own
from logging_setup.names import parse_rotated, rotated_name

GZIP_LEVEL = 6
"""Nearly the ratio of level 9 at a fraction of its time on a small board."""

RESCAN_SECONDS = 1.0
"""The directory is listed again at most this often."""

_FOREIGN_AT_NEXT_NAME_ATTEMPTS = 64


def gzip_bound(size):
    """An upper bound of the size of ``size`` bytes once gzip-compressed
    (deflate's stored blocks plus the header, as zlib's deflateBound)."""
    return size + (size >> 12) + (size >> 14) + 1024


@dataclass(frozen=True)
class RotatedFile:
    name: str
    live_name: str
    index: int
    compressed: bool
    size: int
    inode: int


class LiveFile:
    """One live file: bytes are appended in batches with one ``os.write`` per
    flush, and its size is counted here, so no record costs a stat.

    A write that fails never raises. For want of space the oldest rotated
    files are deleted and the write tried again; when nothing is left to
    delete the batch is lost, counted, and reported once per episode. A live
    file that vanished (its folder deleted) is created again at the next
    flush, with the batch it was holding.
    """

    def __init__(self, directory, name):
        self.directory = directory
        self.name = name
        self.path = os.path.join(directory.path, name)
        self._pending = []
        self._failing = False
        self._lost_records = 0
        self._last_error = None
        self._fd = None
        self._next_open = 0.0
        self.size = 0
        self._open()

    @property
    def is_open(self):
        return self._fd is not None

    @property
    def open_error(self):
        """Why the live file could not be opened (when it is not open)."""
        return None if self.is_open else self._last_error

    @property
    def inode(self):
        return os.fstat(self._fd).st_ino

    def append(self, data):
        """Queue ``data`` (one whole line) for the next flush, rotating first
        when it would not fit. Returns False when the budget cannot hold it."""
        if not self.directory.make_room(self, len(data)):
            return False
        self._pending.append(data)
        self.size += len(data)
        return True

    def flush(self):
        """Write everything appended since the last flush; then the directory
        starts and finishes its compressions, after the write so that they
        never delay a line."""
        if self._pending:
            self._write_pending()
        self.directory.after_write()

    def _write_pending(self):
        if self._fd is None or os.fstat(self._fd).st_nlink == 0:
            self._reopen()
        lines, self._pending = self._pending, []
        if self._fd is None:
            self.size -= sum(map(len, lines))
            self._lose(len(lines))
            return
        self._write_lines(lines)

    def _write_lines(self, lines):
        data = b"".join(lines)
        start = self.size - len(data)
        written = self._write(data)
        while written < len(data) and self._for_want_of_space() and self.directory.free_oldest():
            written = self._cut_torn_line(start, data[:written])
            written += self._write(data[written:])
        if written < len(data):
            kept = self._cut_torn_line(start, data[:written])
            self.size = start + kept
            self._lose(len(lines) - data[:kept].count(b"\n"))
        elif self._failing:
            self._leave_failing()

    def _for_want_of_space(self):
        return getattr(self._last_error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)

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

    def _open(self):
        """Open the live file, creating it if missing. When that fails (a
        foreign entry under its name, no folder) it is tried again at a
        flush a second later or more."""
        try:
            fd = self.directory.open_live_name(self.name)
        except (ForeignEntry, OSError) as error:
            self._last_error = error
            self._next_open = time.monotonic() + RESCAN_SECONDS
            return False
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self.size = os.fstat(fd).st_size + sum(map(len, self._pending))
        return True

    def _reopen(self):
        self._close_fd()
        if time.monotonic() >= self._next_open:
            self.directory.recover_folder()
            self._open()

    def reopen_now(self):
        """Open the live name afresh: it was removed or replaced meanwhile."""
        if self._fd is None:
            return
        self.directory.report(f"{self.path} was removed or replaced; starting it again")
        self._close_fd()
        self.directory.recover_folder()
        self._open()

    def _close_fd(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def start_fresh(self):
        """Put an empty file under the live name and write there from now on.

        The fresh file is created under a temporary name and renamed over
        the live one, so the live name never vanishes (``tail -F``)."""
        folder = self.directory.folder
        fresh, fd = folder.create_temp(self.name, ".new")
        try:
            folder.rename(fresh, self.name)
        except OSError:
            os.close(fd)
            folder.unlink(fresh)
            raise
        os.close(self._fd)
        self._fd = fd
        self.size = 0

    def holds_its_name(self):
        """Whether the live name still is this file (nobody replaced it)."""
        info = self.directory.folder.lstat(self.name)
        return self._fd is not None and info is not None and info.st_ino == self.inode

    def close(self):
        """Flush and close. Idempotent."""
        self.flush()
        self._close_fd()

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

    def _lose(self, count):
        self._lost_records += count
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
    ``max_total_bytes``. ``compressor(plain, packed)`` writes the compressed
    copy of one binary file object into another (``gzip_file`` unless a
    test passes another); with ``background`` it runs in a thread of its
    own, and the budget keeps room for each archive being written until it
    is renamed into place. ``reserved`` is ``(name, bytes)``: a file of the
    directory that another process writes, and the room kept for it.

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
                 reserved=(None, 0), background=False):
        self.folder = Folder(path)
        self.path = self.folder.path
        self._compressor = compressor or gzip_file
        self._background = BackgroundCompressor(self._compressor) if background else None
        self._compressing = []  # jobs not finished yet, in rotation order
        self._awaiting_start = []  # of those, the jobs that start after the next write
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.compress = compress
        self._report = report or _report_on_stderr
        self._reserved_name, self._reserved_bytes = reserved
        self._live = {}
        self._rotated = []  # oldest first
        self._rotated_bytes = 0
        self._other_bytes = 0
        self._foreign_bytes = 0
        self._next_index = 1
        self._reported = set()
        self._last_scan = time.monotonic()
        self._room = 0  # what make_room may hand out without a full check
        self._room_until = 0.0
        self._budget_failing = False
        self._lines_dropped = 0
        self._rotation_failing = False
        self._folder_failing = False

    def open_live(self, name):
        """The live file ``name``, created if missing. Resolves what a crash
        or a power cut left behind: temporary files, a live file still
        linked as its newest rotated file, a torn last line."""
        self._remove_leftovers(name)
        self._unlink_live_if_rotated(name)
        live = LiveFile(self, name)
        self._live[name] = live
        self._scan()
        return live

    def open_live_name(self, name):
        """A descriptor of the live file ``name`` (for LiveFile), created with
        FILE_MODE if missing; an existing one loses a torn last line."""
        self._forget_room()  # the file found may hold bytes the budget has not counted
        try:
            return self.folder.create(name, os.O_RDWR | os.O_APPEND)
        except FileExistsError:
            pass
        fd = self.folder.open_own(name, os.O_RDWR | os.O_APPEND)
        try:
            os.fchmod(fd, FILE_MODE)
            cut = _cut_torn_tail(fd)
        except OSError:
            os.close(fd)
            raise
        if cut:
            self.report(f"cut a torn last line of {cut} bytes off {os.path.join(self.path, name)}")
        return fd

    def used_bytes(self):
        """Bytes the directory holds, by this object's count."""
        live_bytes = 0
        for live in self._live.values():
            live_bytes += live.size
        for job in self._compressing:
            live_bytes += job.bound
        return live_bytes + self._rotated_bytes + self._other_bytes

    def make_room(self, live, size):
        """Rotate ``live`` if ``size`` more bytes would overfill it, then
        delete the oldest rotated files until ``size`` more bytes fit in the
        budget. False when even that cannot make room.

        Most calls only take ``size`` from the room the last full check
        found: until the next rescan is due, nothing but appends can use
        more of the budget (where something can, it calls ``_forget_room``)."""
        if size <= self._room and live.size + size <= self.max_file_bytes and time.monotonic() < self._room_until:
            self._room -= size
            return True
        fits = self._make_room_checked(live, size)
        self._room = self.max_total_bytes - self.used_bytes() - size if fits else 0
        self._room_until = self._last_scan + RESCAN_SECONDS
        return fits

    def _forget_room(self):
        self._room = 0

    def _make_room_checked(self, live, size):
        self.finish_compressions()
        if self._rescan_due():
            self._scan()
        if live.size and live.size + size > self.max_file_bytes:
            self.rotate(live)
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
        Returns False when nothing was rotated (a failure is reported once
        per episode)."""
        live.flush()
        try:
            rotated = self._rotate(live)
        except (OSError, ForeignEntry) as error:
            if not self._rotation_failing:
                self._rotation_failing = True
                self.report(f"cannot rotate {live.path}: {error}")
            return False
        self._rotation_failing = False
        if rotated is None:
            return False
        self._rotated.append(rotated)
        self._rotated_bytes += rotated.size
        if self.compress if compress is None else compress:
            self._compress(rotated)
        return True

    def _rotate(self, live):
        """Link the live file under the next rotated name, then put a fresh
        file under the live name. The new RotatedFile, or None when the live
        name had been taken away (it is then opened afresh)."""
        if not live.holds_its_name():
            live.reopen_now()
            return None
        size, inode = live.size, live.inode
        name = self._link_next(live.name)
        try:
            live.start_fresh()
        except OSError:
            self.folder.unlink_if(name, inode)
            raise
        return RotatedFile(name, live.name, int(name.rsplit(".", 1)[1]), False, size, inode)

    def _link_next(self, live_name):
        """Link ``live_name`` under the next free rotated name; a foreign
        entry there is reported once and stepped over. Returns the name."""
        for _ in range(_FOREIGN_AT_NEXT_NAME_ATTEMPTS):
            name = rotated_name(live_name, self._next_index)
            self._next_index += 1
            try:
                self.folder.link(live_name, name)
            except FileExistsError:
                self._report_foreign(name)
                continue
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.EOPNOTSUPP) or self.folder.lstat(name) is not None:
                    raise
                self.folder.rename(live_name, name)  # no hard links (vfat): the live name is missing a moment
            return name
        raise ForeignEntry(f"the next {_FOREIGN_AT_NEXT_NAME_ATTEMPTS} rotated names are all taken")

    def free_oldest(self):
        """Make room on a full disk: rename the archives finished meanwhile
        into place (their plain copies go), else delete the oldest rotated
        file. False when there is nothing left to free."""
        if self._compressing and self._compressing[0].done.is_set():
            self._finish_compressions()
            return True
        if not self._rotated:
            return False
        self._delete(self._rotated[0])
        return True

    def recover_folder(self):
        """Create the folder again when someone removed it (reported once)."""
        try:
            recreated = self.folder.reopen_if_gone()
        except OSError as error:
            if not self._folder_failing:
                self._folder_failing = True
                self.report(f"the log folder {self.path} is gone and cannot be created again: "
                            f"{error.strerror or error}; dropping lines until it can")
            return
        if recreated or self._folder_failing:
            self._folder_failing = False
            self.report(f"the log folder {self.path} was removed; created it again")
            self._scan()

    def report(self, message):
        self._report(f"edgesense: {message}")

    def _report_foreign(self, name, info=None):
        """Report a foreign entry under one of edgesense's names, once for as
        long as it stays."""
        info = info or self.folder.lstat(name)
        if name in self._reported or info is None:
            return
        self._reported.add(name)
        self.report(f"{os.path.join(self.path, name)} is {describe(info)}, not a file edgesense "
                    "wrote; leaving it alone")

    def _fit(self, live, size):
        """Make room for ``size`` more bytes in ``live``, unless even deleting
        every rotated file could not: then delete nothing and return False."""
        while self.used_bytes() + size > self.max_total_bytes:
            if self._floor(live) + size > self.max_total_bytes:
                return False
            if self._rotated:
                if not self._compression_of_oldest_finished():
                    self._delete(self._rotated[0])
            elif not (live.size and self.rotate(live, compress=False)):
                return False
        return True

    def _floor(self, live):
        """Bytes no rotation of ``live`` or deletion can free: other files
        and the other live files."""
        others = sum(other.size for other in self._live.values() if other is not live)
        return self._other_bytes + others

    def _delete(self, rotated):
        self._abandon_unstarted(rotated)
        rotated = self._settled(rotated)
        try:
            self.folder.unlink_if(rotated.name, rotated.inode)
        except FileNotFoundError:
            pass
        except OSError as error:
            # Forgotten until the next scan, so the budget loop ends.
            self.report(f"cannot delete {os.path.join(self.path, rotated.name)}: {error}")
        self._rotated.remove(rotated)
        self._rotated_bytes -= rotated.size

    def _abandon_unstarted(self, rotated):
        """Drop the compression of ``rotated`` if it has not started: the
        file is about to be deleted, so there is nothing to wait for."""
        for job in self._awaiting_start:
            if job.rotated is rotated:
                self._awaiting_start.remove(job)
                self._compressing.remove(job)
                return

    def _compress(self, rotated):
        """Compress through a temporary name, then rename, so a power cut
        never leaves a torn archive under a final name. Room for the
        temporary file is made first; without room the file stays plain.
        In the background the job's files are usually opened after the
        next write (``after_write``), so a rotation delays the line that
        caused it by little more than the rename; a budget that needs the
        archive's room at once starts the job at once."""
        if not self._room_to_compress(rotated):
            return
        job = CompressionJob(rotated, gzip_bound(rotated.size))
        self._compressing.append(job)
        if self._background is None:
            self._start(job)
            self._finish_compressions()
        else:
            self._awaiting_start.append(job)

    def _start(self, job):
        try:
            source = self.folder.open_own(job.rotated.name)
            try:
                temp, fd = self.folder.create_temp(job.rotated.name + ".gz", ".tmp", os.O_WRONLY)
            except BaseException:
                os.close(source)
                raise
        except (OSError, ForeignEntry) as error:
            self._compressing.remove(job)
            self._report_uncompressed(job.rotated, error)
            return
        job.attach(temp, source, fd)
        if self._background is None:
            job.run(self._compressor)
        else:
            self._background.submit(job)

    def after_write(self):
        """Start the compressions of the files rotated since the last write,
        and rename into place the archives the background thread finished."""
        if self._awaiting_start:
            self._start_compressions()
        self.finish_compressions()

    def _start_compressions(self):
        awaiting, self._awaiting_start = self._awaiting_start, []
        for job in awaiting:
            self._start(job)

    def finish_compressions(self):
        """Rename into place every archive the background thread finished."""
        if self._compressing and self._compressing[0].done.is_set():
            self._finish_compressions()

    def _finish_compressions(self, until=None):
        """Rename every archive written so far into place, in rotation order;
        wait for the jobs up to ``until`` (a job) first."""
        if until is not None:
            self._start_compressions()
        while self._compressing:
            job = self._compressing[0]
            if until is not None:
                job.done.wait()
            elif not job.done.is_set():
                return
            self._compressing.pop(0)
            self._finish(job)
            if job is until:
                return

    def _finish(self, job):
        rotated, temp = job.rotated, job.temp
        try:
            if job.error is not None:
                raise job.error
            self.folder.move_new(temp, rotated.name + ".gz")
            temp = None
            self.folder.unlink_if(rotated.name, rotated.inode)
        except (OSError, ForeignEntry) as error:
            if temp is not None:
                _unlink_quietly(self.folder, temp)
            self._report_uncompressed(rotated, error)
            return
        self._replace(rotated, RotatedFile(rotated.name + ".gz", rotated.live_name, rotated.index, True,
                                           job.info.st_size, job.info.st_ino))

    def _report_uncompressed(self, rotated, error):
        self.report(f"cannot compress {os.path.join(self.path, rotated.name)}: {error}; "
                    "leaving it uncompressed")

    def _compression_of_oldest_finished(self):
        """When the oldest rotated file is being compressed, wait for its
        archive (which may free enough) instead of deleting it. True if it was."""
        oldest = self._rotated[0]
        if not any(job.rotated is oldest for job in self._compressing):
            return False
        self._settled(oldest)
        return True

    def _settled(self, rotated):
        """``rotated`` as it is once its compression (if under way) is
        finished: a file being compressed is never deleted under the job."""
        job = next((job for job in self._compressing if job.rotated is rotated), None)
        if job is None:
            return rotated
        position = self._rotated.index(rotated) if rotated in self._rotated else None
        self._finish_compressions(until=job)
        return self._rotated[position] if position is not None else rotated

    def _replace(self, old, new):
        if old not in self._rotated:  # forgotten by a scan meanwhile: the next scan finds the archive
            return
        position = len(self._rotated) - 1 - self._rotated[::-1].index(old)
        self._rotated[position] = new
        self._rotated_bytes += new.size - old.size

    def _room_to_compress(self, rotated):
        """Room for ``rotated``'s archive at its largest, deleting the oldest
        history only once the archives still being written are in place:
        each of them holds room for its own bound until then."""
        bound = gzip_bound(rotated.size)
        if self.used_bytes() - self._rotated_bytes + rotated.size + bound > self.max_total_bytes:
            return False
        while self.used_bytes() + bound > self.max_total_bytes:
            if self._compressing:
                self._finish_compressions(until=self._compressing[0])
                continue
            if self._rotated[0] is rotated:
                return False
            self._delete(self._rotated[0])
        return True

    def _rescan_due(self):
        return time.monotonic() - self._last_scan >= RESCAN_SECONDS

    def _scan(self):
        """Count the rotated files and every other regular file afresh.
        Rotated files already known are not looked at again; a file that
        vanishes meanwhile is simply gone."""
        known = {rotated.name: rotated for rotated in self._rotated}
        rotated, other_bytes, reserved_bytes, foreign = [], 0, 0, set()
        being_written = {job.temp for job in self._compressing}  # counted as their jobs' bound
        for name in self.folder.names():
            if name in self._live or name in being_written:
                continue
            info = None if name in known else self.folder.lstat(name)
            parsed = parse_rotated(name)
            if parsed and parsed[0] in self._live:
                self._next_index = max(self._next_index, parsed[1] + 1)
                if name in known or (info is not None and is_own(info)):
                    rotated.append(known.get(name) or RotatedFile(name, *parsed, info.st_size, info.st_ino))
                    continue
                if info is not None:
                    foreign.add(name)
                    self._report_foreign(name, info)
            if info is None or not stat.S_ISREG(info.st_mode):
                continue
            if name == self._reserved_name:
                reserved_bytes = info.st_size
            else:
                other_bytes += info.st_size
        self._reported &= foreign
        self._rotated = sorted(rotated, key=lambda file: file.index)
        self._rotated_bytes = sum(file.size for file in rotated)
        self._foreign_bytes = other_bytes + reserved_bytes
        self._other_bytes = other_bytes + max(reserved_bytes, self._reserved_bytes)
        self._last_scan = time.monotonic()
        self._forget_room()

    def _remove_leftovers(self, live_name):
        """Temporary files of an interrupted rotation or compression, and a
        plain rotated file whose compressed copy was already renamed into
        place; only files edgesense made."""
        names = set(self.folder.names())
        for name in names:
            if not name.startswith(live_name + "."):
                continue
            parsed = parse_rotated(name)
            compressed_too = parsed is not None and not parsed[2] and self._is_own(name + ".gz")
            if (name.endswith(TEMP_SUFFIXES) or compressed_too) and self._is_own(name):
                self.folder.unlink(name)

    def _unlink_live_if_rotated(self, live_name):
        """A power cut between a rotation's link and its rename leaves the
        live file also linked as its newest rotated file: drop the live
        name, so no line is read twice."""
        info = self.folder.lstat(live_name)
        if info is None or not is_own(info, links=2):
            return
        for name in self.folder.names():
            parsed = parse_rotated(name)
            other = self.folder.lstat(name) if parsed and parsed[0] == live_name else None
            if other is not None and other.st_ino == info.st_ino:
                self.folder.unlink(live_name)
                return

    def _is_own(self, name):
        info = self.folder.lstat(name)
        return info is not None and is_own(info)

    def close(self):
        """Close every live file, finish the compressions under way, close
        the folder. Idempotent."""
        for live in self._live.values():
            live.close()
        self._start_compressions()
        if self._compressing:
            self._finish_compressions(until=self._compressing[-1])
        if self._background is not None:
            self._background.close()
        self.folder.close()


def _cut_torn_tail(fd, block_size=65536):
    """Truncate ``fd``'s file after its last newline (a write cut short by a
    crash leaves a torn last line). Returns the bytes cut."""
    size = end = os.fstat(fd).st_size
    while end > 0:
        start = max(0, end - block_size)
        block = os.pread(fd, end - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            kept = start + newline + 1
            break
        end = start
    else:
        kept = 0
    if kept < size:
        os.ftruncate(fd, kept)
    return size - kept


def gzip_file(plain, packed):
    """Write binary file ``plain`` gzip-compressed into binary file ``packed``."""
    with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=packed) as out:
        shutil.copyfileobj(plain, out, 256 * 1024)


def _unlink_quietly(folder, name):
    try:
        folder.unlink(name)
    except OSError:
        pass


def _report_on_stderr(message):
    try:
        print(message, file=sys.stderr, flush=True)
    except Exception:
        pass

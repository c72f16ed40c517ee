"""The listener's file handlers: lines are gathered per batch of records and
written with one ``os.write`` per file when the listener flushes.

A write that fails (a full disk) never raises: it is reported once per file
and per episode on stderr, the lines of that batch are lost, and the next
batch tries again, so writing resumes by itself when space returns (L7).
"""

import logging
import os
import sys

from logging_setup.formats import LOG_FORMAT, reading_line, reading_of

LOG_FILE_NAME = "edgesense.log"
READINGS_FILE_NAME = "readings.jsonl"


class LiveFile:
    """The live file at ``path``: appends bytes in batches and counts its size
    itself, so no record costs a stat."""

    def __init__(self, path, report=None):
        self.path = os.fspath(path)
        self._report = report or _report_on_stderr
        self._pending = []
        self._failing = False
        self._lost_records = 0
        self._last_error = None
        self._fd = _open_for_append(self.path)
        self.size = os.fstat(self._fd).st_size

    def append(self, data):
        """Queue ``data`` (one whole line) for the next flush."""
        self._pending.append(data)
        self.size += len(data)

    def flush(self):
        """Write everything appended since the last flush."""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        data = b"".join(lines)
        written = self._write(data)
        if written < len(data):
            self.size -= len(data) - written
            self._lost_records += len(lines)
            self._enter_failing()
        elif self._failing:
            self._leave_failing()

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
            self._report(f"edgesense: cannot write {self.path}: {self._last_error}; "
                         "dropping its lines until writing works again")

    def _leave_failing(self):
        self._failing = False
        lost, self._lost_records = self._lost_records, 0
        self._report(f"edgesense: writing {self.path} again; {lost} records were lost meanwhile")


class LogFileHandler(logging.Handler):
    """Writes every record to the app log in ``LOG_FORMAT``. The listener
    calls ``flush()`` after each batch; ``emit`` does not write."""

    def __init__(self, live_file, level=logging.NOTSET):
        super().__init__(level)
        self.file = live_file
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record):
        try:
            self.file.append(self.line(record))
        except Exception:
            self.handleError(record)

    def line(self, record):
        return (self.format(record) + "\n").encode("utf-8", "backslashreplace")

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()
        super().close()


class ReadingsHandler(LogFileHandler):
    """Writes the reading of each record that carries one as a JSON line."""

    def emit(self, record):
        if reading_of(record) is not None:
            super().emit(record)

    def line(self, record):
        return reading_line(reading_of(record)).encode("utf-8", "backslashreplace")


def _open_for_append(path):
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _report_on_stderr(message):
    try:
        print(message, file=sys.stderr, flush=True)
    except Exception:
        pass

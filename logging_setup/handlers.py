"""The listener's handlers. ``emit`` only keeps a line (in its live file, or
for the console); the listener calls ``flush()`` once per batch of records,
which writes each file with one ``os.write`` and the console with one write."""

import logging

from logging_setup.formats import LineFormatter, reading_line, reading_of


class LogFileHandler(logging.Handler):
    """Writes every record to a live file (``directory.LiveFile``) in
    ``LOG_FORMAT``, tracebacks included."""

    def __init__(self, live_file, level=logging.NOTSET):
        super().__init__(level)
        self.file = live_file
        self.setFormatter(LineFormatter())

    def emit(self, record):
        try:
            self.file.append((self.formatter.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()
        super().close()


class ReadingsHandler(LogFileHandler):
    """Writes the reading of each record that carries one as a JSON line."""

    def emit(self, record):
        reading = reading_of(record)
        if reading is None:
            return
        try:
            self.file.append(reading_line(reading).encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)


class ConsoleHandler(logging.StreamHandler):
    """Prints records on a stream (the journal under systemd) with one write
    per batch, as the files are written: ``emit`` keeps the line, and the
    listener's ``flush()`` after each batch writes what was kept."""

    def __init__(self, stream):
        super().__init__(stream)
        self._pending = []
        self._last_record = None

    def emit(self, record):
        try:
            self._pending.append(self.format(record) + self.terminator)
            self._last_record = record
        except Exception:
            self.handleError(record)

    def flush(self):
        if self._pending:
            lines, self._pending = self._pending, []
            try:
                self.stream.write("".join(lines))
            except Exception:
                self.handleError(self._last_record)
        super().flush()

    def close(self):
        self.flush()
        super().close()


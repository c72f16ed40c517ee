"""The listener's file handlers. ``emit`` only queues a line in its live
file; the listener calls ``flush()`` once per batch of records, which writes
each file with one ``os.write``."""

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

"""Output capture: what a sensor prints becomes log records."""

import io


class PrintedLines(io.TextIOBase):
    """A worker's sys.stdout or sys.stderr: each line a sensor prints
    becomes a log record, so that it lands in the log files inside the
    storage budget instead of flooding the journal."""

    def __init__(self, logger, level):
        self._logger = logger
        self._level = level
        self._partial = ""

    def writable(self):
        return True

    def write(self, text):
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if line.strip():
                self._logger.log(self._level, "%s", line)
        return len(text)

    def flush(self):
        if self._partial.strip():
            self._logger.log(self._level, "%s", self._partial)
        self._partial = ""

"""How records are rendered: before sending, in the files, on the console."""

import json
import logging
import math
import os
import re
import time

READING_ATTR = "reading"
"""A record that carries ``extra={"reading": {...}}`` is a reading: the
listener also writes that dict as one JSON line to ``readings.jsonl``."""

LOG_FORMAT = "%(asctime)s %(processName)-10s %(name)s %(levelname)-8s %(message)s"
"""The app log's line format (the article's)."""

RECORD_START = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<process>\S+) +(?P<logger>\S+) (?P<level>[A-Z]+) "
)
"""The parser of ``LOG_FORMAT``: what starts a record's first line, with its
process, logger and level. The lines that do not match (a traceback) belong
to the record above them."""

JOURNAL_FORMAT = "%(processName)s %(name)s %(levelname)s %(message)s"
"""Console format under journald: journald adds the timestamp itself."""

CONTINUATION_MARK = "| "
"""What starts every line of a record after its first (its traceback), so
that no reader takes one for a record of its own."""

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

SYSLOG_PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def escape(text):
    """``text`` as printable text on one line (L12): line breaks, terminal
    escapes, NUL and the other control characters, and the Unicode line
    separators and direction overrides become ``\\n``, ``\\x1b``, ``\\u2028``...

    >>> print(escape("door\\n2026-12-01 \\x1b[2J\\u2028"))
    door\\n2026-12-01 \\x1b[2J\\u2028
    """
    if text.isascii() and text.isprintable():  # no regex for the common line
        return text
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(_escaped_character, text)


def _escaped_character(found):
    character = found.group()
    if character in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_name(text):
    """``escape(text)`` with its spaces as ``\\x20`` too: a process, logger or
    level name is one field of the line, which readers split at spaces."""
    return escape(text).replace(" ", "\\x20")


def continuation_lines(text):
    """The lines of a traceback (or stack) text, each escaped and marked."""
    return [CONTINUATION_MARK + escape(line) for line in text.split("\n")]


class OneLineFormatter(logging.Formatter):
    """A formatter whose record is one escaped line, followed by its
    traceback as marked continuation lines (L12). Every field a record
    carries is escaped, whoever sent it.

    The few process, logger and level names a listener sees are escaped
    once each and remembered (up to ``NAMES_REMEMBERED`` of them). A
    subclass whose line starts with those three fields names them in
    ``HEAD`` (a ``str.format`` pattern) and builds its plain lines with
    ``head``, which remembers each combination seen."""

    NAMES_REMEMBERED = 1024
    HEAD = None

    def __init__(self, fmt=None, datefmt=None):
        super().__init__(fmt, datefmt)
        self._uses_time = self.usesTime()
        self._escaped_names = {}
        self._heads = {}

    def format(self, record):
        record.message = escape(record.getMessage())
        record.name = self._escaped_name(record.name)
        record.processName = self._escaped_name(getattr(record, "processName", ""))
        record.levelname = self._escaped_name(record.levelname)
        if self._uses_time:
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if not (record.exc_text or record.stack_info):
            return line
        lines = [line]
        for text in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if text:
                lines += continuation_lines(text.rstrip("\n"))
        return "\n".join(lines)

    def head(self, record):
        """``HEAD`` filled with the record's escaped process, logger and level names."""
        names = (getattr(record, "processName", ""), record.name, record.levelname)
        try:
            head = self._heads.get(names)
        except TypeError:  # a name that is not even hashable
            head = None
        if head is None:
            head = self.HEAD.format(*map(self._escaped_name, names))
            if len(self._heads) < self.NAMES_REMEMBERED and all(type(name) is str for name in names):
                self._heads[names] = head  # only plain text: a number sent as a name never finds another's (1 == 1.0)
        return head

    def _escaped_name(self, value):
        if type(value) is not str:
            return escape_name(str(value))
        escaped = self._escaped_names.get(value)
        if escaped is None:
            escaped = escape_name(value)
            if len(self._escaped_names) < self.NAMES_REMEMBERED:
                self._escaped_names[value] = escaped
        return escaped


_THREE_DIGITS = tuple(f"{number:03d}" for number in range(1000))
"""A timestamp's milliseconds as text, looked up rather than formatted."""


class LineFormatter(OneLineFormatter):
    """``LOG_FORMAT``, built without the generic formatting for a record
    without a traceback, with the timestamp's strftime done once per second."""

    HEAD = "{:<10} {} {:<8}"

    def __init__(self):
        super().__init__(LOG_FORMAT)
        self._second = None
        self._second_text = ""

    def format(self, record):
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        if int(record.created) != self._second:
            self._start_second(record.created)
        millis = int(record.msecs)
        millis = _THREE_DIGITS[millis] if 0 <= millis < 1000 else f"{millis:03d}"
        return f"{self._second_text},{millis} {self.head(record)} {escape(record.getMessage())}"

    def formatTime(self, record, datefmt=None):
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        if int(record.created) != self._second:
            self._start_second(record.created)
        return self.default_msec_format % (self._second_text, record.msecs)

    def _start_second(self, created):
        self._second_text = time.strftime(self.default_time_format, self.converter(created))
        self._second = int(created)


class RenderingFormatter(logging.Formatter):
    """The sending side's formatter: merges the arguments into the message,
    and renders the traceback and stack as text apart from it (what
    QueueHandler.prepare sends), so the listener can escape the message and
    mark the traceback's lines.

    A message whose arguments do not merge (``log.info("%d", "x")``) is sent
    as its parts with the error, instead of being lost to handleError.
    """

    def message(self, record):
        """The message merged with its arguments. When they do not merge the
        record itself is mended, so the handlers after this one work too."""
        try:
            return record.getMessage()
        except Exception as error:
            record.msg = f"{safe_repr(record.msg)} % {safe_repr(record.args)} (arguments did not merge: {error!r})"
            record.args = None
            return record.msg

    def traceback(self, record):
        """The traceback and stack of ``record`` as text, or None."""
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts) or None


class JournalFormatter(OneLineFormatter):
    """No timestamp, and a ``<N>`` syslog priority prefix on every line, so
    journald files each line of a traceback under the record's priority."""

    HEAD = "{} {} {}"

    def __init__(self):
        super().__init__(JOURNAL_FORMAT)

    def format(self, record):
        prefix = f"<{syslog_priority(record.levelno)}>"
        if not (record.exc_info or record.exc_text or record.stack_info):
            return f"{prefix}{self.head(record)} {escape(record.getMessage())}"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def syslog_priority(levelno):
    """The syslog priority of a logging level (custom levels round down)."""
    if levelno in SYSLOG_PRIORITIES:
        return SYSLOG_PRIORITIES[levelno]
    for level in sorted(SYSLOG_PRIORITIES, reverse=True):
        if levelno >= level:
            return SYSLOG_PRIORITIES[level]
    return SYSLOG_PRIORITIES[logging.DEBUG]


def stream_is_journal(stream, environ=os.environ):
    """True when ``stream`` is the journal: ``JOURNAL_STREAM`` names its
    device and inode (systemd.exec)."""
    expected = environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


def console_formatter(stream, environ=os.environ):
    """The journal's format when ``stream`` is the journal, else the log file's."""
    if stream_is_journal(stream, environ):
        return JournalFormatter()
    return LineFormatter()


def reading_of(record):
    """The reading dict a record carries, or None."""
    reading = getattr(record, READING_ATTR, None)
    return reading if isinstance(reading, dict) else None


_READING_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"), allow_nan=False)


def reading_line(reading):
    """One JSON line for ``readings.jsonl``; values JSON cannot hold become
    text, and NaN and the infinities become null (strict JSON has neither)."""
    try:
        return _READING_ENCODER.encode(reading) + "\n"
    except ValueError:
        return _READING_ENCODER.encode(_finite(reading)) + "\n"


def _finite(value):
    """``value`` with every NaN or infinite float, however deeply nested, as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def safe_repr(value):
    """repr(value), or a description of it when its repr raises."""
    try:
        return repr(value)
    except Exception as error:
        return f"<{type(value).__name__} object, repr failed: {error!r}>"

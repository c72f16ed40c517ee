"""Console formats (L9): the article's format in a terminal, the journal's
when JOURNAL_STREAM names stderr."""

import io
import logging
import os
import sys

import pytest

from logging_setup import LogSettings, LogTransport, configure_process, run_listener
from logging_setup.formats import (JOURNAL_FORMAT, LOG_FORMAT, RECORD_START, JournalFormatter, LineFormatter,
                                    OneLineFormatter, console_formatter, stream_is_journal, syslog_priority)
from logging_setup.handlers import ConsoleHandler

WAIT = 20.0


def record(level, message, exc_text=None):
    made = logging.makeLogRecord({"name": "sensors.gpio", "levelno": level, "levelname": logging.getLevelName(level),
                                  "msg": message, "processName": "sensor:door", "created": 1764000000.25})
    made.msecs = 250.0
    made.exc_text = exc_text
    return made


def journal_environ(stream):
    info = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}


@pytest.mark.parametrize("level, priority", [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4),
                                             (logging.ERROR, 3), (logging.CRITICAL, 2), (25, 6)])
def test_syslog_priorities(level, priority):
    assert syslog_priority(level) == priority


def test_terminal_gets_the_article_format(tmp_path):
    with open(tmp_path / "stderr", "w") as stream:
        formatter = console_formatter(stream, environ={})
        line = formatter.format(record(logging.INFO, "door closed"))
    assert line.endswith(" sensor:door sensors.gpio INFO     door closed")
    assert line[:23] == formatter.formatTime(record(logging.INFO, ""))  # starts with the timestamp


def test_journal_gets_priority_and_no_timestamp(tmp_path):
    with open(tmp_path / "stderr", "w") as stream:
        formatter = console_formatter(stream, environ=journal_environ(stream))
    assert isinstance(formatter, JournalFormatter)
    assert formatter.format(record(logging.WARNING, "door open for 600 s")) == (
        "<4>sensor:door sensors.gpio WARNING door open for 600 s")


def test_every_traceback_line_carries_the_priority():
    line = JournalFormatter().format(record(logging.ERROR, "read failed", exc_text="Traceback:\nValueError: x"))
    assert line.split("\n") == ["<3>sensor:door sensors.gpio ERROR read failed", "<3>| Traceback:",
                                 "<3>| ValueError: x"]


def test_journal_stream_of_another_file_is_not_the_journal(tmp_path):
    with open(tmp_path / "stderr", "w") as stream, open(tmp_path / "other", "w") as other:
        assert not stream_is_journal(stream, journal_environ(other))
        assert stream_is_journal(stream, journal_environ(stream))


def listener_on_journal(receiver, settings, stderr_path):
    """run_listener as systemd starts it: stderr is the journal's stream."""
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    info = os.fstat(2)
    os.environ["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
    run_listener(receiver, settings)


def warning_writer(sender):
    configure_process(sender)
    logging.getLogger("sensors.gpio").warning("door open for %d s", 600)


def test_listener_console_under_journald(mp_context, tmp_path):
    settings = LogSettings(dir=tmp_path / "logs", console=True)
    with LogTransport.create() as transport:
        listener = mp_context.Process(target=listener_on_journal, args=(transport.receiver, settings, tmp_path / "err"),
                                      name="log-listener")
        listener.start()
        writer = mp_context.Process(target=warning_writer, args=(transport.sender,), name="sensor:door")
        writer.start()
        writer.join(WAIT)
        assert transport.sender.send_stop()
        listener.join(WAIT)
        assert listener.exitcode == 0
    assert (tmp_path / "err").read_text().splitlines() == [
        f"<6>log-listener logging_setup.listener INFO log listener started, writing to {settings.dir}",
        "<4>sensor:door sensors.gpio WARNING door open for 600 s",
    ]


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL])
def test_record_start_parses_what_the_line_formatter_writes(level):
    line = LineFormatter().format(record(level, "sensor=door value=1"))
    found = RECORD_START.match(line)
    assert (found["process"], found["logger"], found["level"]) == ("sensor:door", "sensors.gpio",
                                                                    logging.getLevelName(level))
    assert line[found.end():].lstrip() == "sensor=door value=1"


def test_remembered_names_stay_escaped_and_unremembered_ones_are_escaped_too():
    formatter = LineFormatter()
    names = [f"sensors.n{number}\n\x1b[2J" for number in range(LineFormatter.NAMES_REMEMBERED + 5)]
    for _ in range(2):
        lines = [formatter.format(logging.makeLogRecord({"name": name, "msg": "m", "levelname": "INFO",
                                                         "processName": "sensor:a b"})) for name in names]
    assert [line.split(" ")[3] for line in lines] == [f"sensors.n{number}\\n\\x1b[2J" for number in range(len(names))]
    assert all(line.split(" ")[2] == "sensor:a\\x20b" for line in lines)


def test_a_name_that_is_not_text_is_written_as_its_escaped_text():
    line = LineFormatter().format(logging.makeLogRecord({"name": "n", "msg": "m", "levelname": "INFO",
                                                         "processName": ["a b", 1]}))
    assert " ['a\\x20b',\\x201] n INFO " in line


class JournalByTheGenericFormat(OneLineFormatter):
    def format(self, record):
        return f"<{syslog_priority(record.levelno)}>" + super().format(record)


@pytest.mark.parametrize("names", [("sensor:door", "sensors.gpio", "INFO"), ("log-listener", "a.b", "WARNING"),
                                   ("sensor:a very long name", "x\ny", "Level 25"), ("p", "n", "CRITICAL")])
@pytest.mark.parametrize("formatter, generic", [(LineFormatter, lambda: OneLineFormatter(LOG_FORMAT)),
                                                (JournalFormatter, lambda: JournalByTheGenericFormat(JOURNAL_FORMAT))])
def test_plain_lines_are_what_the_generic_format_writes(names, formatter, generic):
    process, logger, level = names
    made = logging.makeLogRecord({"name": logger, "msg": "reading %s\x1b[2J", "args": ("x",), "levelname": level,
                                  "levelno": logging.getLevelName(level) if level != "Level 25" else 25,
                                  "processName": process, "created": 1764000000.999, "msecs": 999.0})
    formatter = formatter()
    expected = generic().format(logging.makeLogRecord(made.__dict__))
    assert [formatter.format(made) for _ in range(2)] == [expected] * 2


@pytest.mark.parametrize("msecs", [0.0, 7.0, 42.9, 999.0, 1000.0, -1.0])  # the last two: a sender's odd record
@pytest.mark.parametrize("message", ["plain text", "caf\u00e9", "a\u2028b", "tab\there", "\x7f", ""])
def test_a_plain_line_keeps_the_generic_milliseconds_and_escapes(msecs, message):
    made = logging.makeLogRecord({"name": "n", "msg": message, "levelname": "INFO", "levelno": logging.INFO,
                                  "processName": "p", "created": 1764000000.0, "msecs": msecs})
    expected = OneLineFormatter(LOG_FORMAT).format(logging.makeLogRecord(made.__dict__))
    assert LineFormatter().format(made) == expected


class WritesCounted(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


def test_the_console_gets_one_write_per_batch():
    stream = WritesCounted()
    console = ConsoleHandler(stream)
    console.setFormatter(JournalFormatter())
    for number in range(5):
        console.emit(record(logging.INFO, f"reading {number}"))
    assert stream.writes == 0
    console.flush()
    console.flush()
    assert stream.writes == 1
    assert stream.getvalue().splitlines() == [f"<6>sensor:door sensors.gpio INFO reading {number}" for number in range(5)]


def test_names_equal_as_numbers_keep_their_own_text():
    formatter = LineFormatter()
    lines = [formatter.format(logging.makeLogRecord({"name": name, "msg": "m", "levelname": "INFO", "processName": "p"}))
             for name in (1, 1.0, True, 1)]
    assert [line.split()[3] for line in lines] == ["1", "1.0", "True", "1"]

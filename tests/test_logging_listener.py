"""The listener on its own: what it writes, what it skips, where it stops."""

import json
import logging
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from logging_setup import LogSettings, LogTransport, run_listener
from logging_setup.transport import encode_record

WAIT = 20.0
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def send(transport, name, level, message, **extra):
    record = logging.makeLogRecord({"name": name, "levelno": level, "levelname": logging.getLevelName(level),
                                    "msg": message, "processName": "sensor:t", **extra})
    transport.sender.put_nowait(record)


def run_until_stop(ctx, transport, settings):
    listener = ctx.Process(target=run_listener, args=(transport.receiver, settings), name="log-listener")
    listener.start()
    listener.join(WAIT)
    assert listener.exitcode == 0


def log_lines(settings):
    """The app log's lines without their timestamps."""
    text = (settings.dir / "edgesense.log").read_text()
    return [TIMESTAMP.sub("", line) for line in text.splitlines()]


@pytest.fixture
def transport():
    with LogTransport.create() as transport:
        yield transport


def test_writes_lines_and_readings_in_order(mp_context, transport, tmp_path):
    settings = LogSettings(dir=tmp_path, console=False)
    send(transport, "sensors.system", logging.INFO, "cpu 48.2 C", reading={"sensor": "cpu", "value": 48.2})
    send(transport, "app.worker", logging.ERROR, "read failed", exc_text="Traceback (most recent call last):\nOSError: x")
    send(transport, "sensors.system", logging.INFO, "cpu 48.7 C", reading={"sensor": "cpu", "value": 48.7})
    transport.sender.send_stop()
    run_until_stop(mp_context, transport, settings)

    assert log_lines(settings) == [
        f"log-listener logging_setup.listener INFO     log listener started, writing to {tmp_path}",
        "sensor:t   sensors.system INFO     cpu 48.2 C",
        "sensor:t   app.worker ERROR    read failed",
        "| Traceback (most recent call last):",
        "| OSError: x",
        "sensor:t   sensors.system INFO     cpu 48.7 C",
    ]
    readings = (tmp_path / "readings.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in readings] == [{"sensor": "cpu", "value": 48.2}, {"sensor": "cpu", "value": 48.7}]


def test_level_filters_the_log_but_not_the_readings(mp_context, transport, tmp_path):
    settings = LogSettings(dir=tmp_path, level="WARNING", console=False)
    send(transport, "sensors.system", logging.INFO, "cpu 48.2 C", reading={"value": 48.2})
    send(transport, "app.worker", logging.WARNING, "cpu above 80 C")
    transport.sender.send_stop()
    run_until_stop(mp_context, transport, settings)
    assert log_lines(settings) == ["sensor:t   app.worker WARNING  cpu above 80 C"]
    assert (tmp_path / "readings.jsonl").read_text() == '{"value":48.2}\n'


def test_an_undecodable_datagram_is_reported_and_skipped(mp_context, tmp_path):
    settings = LogSettings(dir=tmp_path, console=False)
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with receiver, sender:
        sender.send(b"not a record")
        sender.send(b"\x80\x05N.")  # a pickle, but of None
        sender.send(encode_record(logging.LogRecord("app", logging.INFO, __file__, 1, "after", None, None)))
        sender.send(b"\x00edgesense-stop")
        run_until_stop(mp_context, LogTransport(receiver, sender), settings)
    lines = log_lines(settings)
    assert lines[1].startswith("log-listener logging_setup.listener WARNING  dropped an undecodable log datagram of 12 bytes")
    assert lines[2].startswith("log-listener logging_setup.listener WARNING  dropped an undecodable log datagram of 4 bytes")
    assert lines[3:] == ["MainProcess app INFO     after"]


def test_records_after_the_stop_wait_for_the_next_listener(mp_context, transport, tmp_path):
    settings = LogSettings(dir=tmp_path, console=False)
    send(transport, "app", logging.INFO, "first")
    transport.sender.send_stop()
    send(transport, "app", logging.INFO, "second")
    transport.sender.send_stop()
    run_until_stop(mp_context, transport, settings)
    assert [line for line in log_lines(settings) if line.startswith("sensor:t")] == ["sensor:t   app INFO     first"]
    run_until_stop(mp_context, transport, settings)
    assert [line for line in log_lines(settings) if line.startswith("sensor:t")] == [
        "sensor:t   app INFO     first", "sensor:t   app INFO     second"]


def test_an_oversized_reading_lands_with_its_big_field_truncated(mp_context, transport, tmp_path):
    settings = LogSettings(dir=tmp_path, console=False)
    reading = {"ts": "2026-11-25T15:00:00Z", "sensor": "u", "type": "blobby", "value": 1, "unit": "u",
               "blob": "x" * 2_000_000}
    send(transport, "app.worker", logging.INFO, "u read 1 u", reading=reading)
    transport.sender.send_stop()
    run_until_stop(mp_context, transport, settings)
    [line] = (tmp_path / "readings.jsonl").read_text().splitlines()
    assert json.loads(line) == {**reading, "blob": "x" * 1024 + f"... [truncated {2_000_000 - 1024} bytes]"}


def test_readings_hold_null_for_nan_and_infinity(mp_context, transport, tmp_path):
    settings = LogSettings(dir=tmp_path, console=False)
    send(transport, "app.worker", logging.INFO, "t read nan C",
         reading={"value": float("nan"), "extra": {"peaks": [1.5, float("inf"), float("-inf")]}})
    transport.sender.send_stop()
    run_until_stop(mp_context, transport, settings)
    assert (tmp_path / "readings.jsonl").read_text() == '{"value":null,"extra":{"peaks":[1.5,null,null]}}\n'
    assert log_lines(settings)[1] == "sensor:t   app.worker INFO     t read nan C"


@pytest.mark.parametrize("where", ["under-a-file", "in-proc"])
def test_a_folder_that_cannot_be_created_is_one_line_and_exit_2(tmp_path, where):
    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" / "logs" if where == "under-a-file" else Path("/proc/edgesense-logs")
    script = ("import sys; from pathlib import Path; from logging_setup import LogSettings, LogTransport, run_listener; "
              f"run_listener(LogTransport.create().receiver, LogSettings(dir=Path({str(folder)!r})))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT)

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"edgesense: cannot use the log folder {folder}: ")


FORGED = "2026-12-01 10:00:00,000 sensor:door sensors.gpio INFO     reading sensor=door value=1 unit=-"
BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x85", "\u2028", "\u2029"]
UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def forge_records(transport):
    """A sensor that tries every way to forge door's lines: line breaks,
    terminal escapes and NUL in a message, a logger name, a unit, an extra
    key and value, and exception text."""
    from logging_setup.process import RenderedQueueHandler
    logger = logging.Logger("sensors.evil\n" + FORGED)
    logger.addHandler(RenderedQueueHandler(transport.sender))
    for brk in BREAKS:
        logger.info("ok" + brk + FORGED + "\x1b[2J\x00")
    logger.info("reading sensor=evil value=1 unit=C", extra={"reading": {
        "sensor": "evil", "unit": "C\n" + FORGED, "k\r\ney" + FORGED: "v\u2028\x1b[31m" + FORGED}})
    try:
        raise ValueError("bad\n" + FORGED + "\r" + FORGED + "\x1b]0;owned\x07")
    except ValueError:
        logger.exception("read failed")
    transport.sender.send_stop()


def test_no_field_of_a_record_can_forge_another_line(mp_context, transport, tmp_path):
    from app.logview import RecordFilter, group_records
    settings = LogSettings(dir=tmp_path / "logs", console=False)
    forge_records(transport)
    run_until_stop(mp_context, transport, settings)

    lines = (settings.dir / "edgesense.log").read_bytes().decode().split("\n")[:-1]
    assert not any(UNPRINTABLE.search(line) for line in lines)
    assert all(TIMESTAMP.match(line) or line.startswith("| ") for line in lines)
    records = group_records(lines, RecordFilter())
    assert len(records) == 1 + len(BREAKS) + 2  # the listener's own, then the sensor's
    assert [record for record in records if RecordFilter(sensor="door").matches(record[0])] == []
    assert len(records[-1]) > 3 and all(line.startswith("| ") for line in records[-1][1:])
    readings = (settings.dir / "readings.jsonl").read_bytes().split(b"\n")
    assert readings[1:] == [b""]
    assert json.loads(readings[0])["unit"] == "C\n" + FORGED


def test_the_console_gets_no_raw_control_character(tmp_path):
    script = ("import sys; from pathlib import Path; from logging_setup import LogSettings, LogTransport, run_listener; "
              "import tests.test_logging_listener as t; transport = LogTransport.create(); t.forge_records(transport); "
              f"run_listener(transport.receiver, LogSettings(dir=Path({str(tmp_path / 'logs')!r}), console=True))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=WAIT,
                            cwd=Path(__file__).resolve().parent.parent)

    assert result.returncode == 0, result.stderr
    console = result.stderr.decode().split("\n")
    assert len(console) > 10
    assert not any(UNPRINTABLE.search(line) for line in console)


def test_a_folder_where_no_live_file_opens_is_one_line_and_exit_2(tmp_path):
    for name in ("edgesense.log", "readings.jsonl"):
        (tmp_path / "logs" / name).mkdir(parents=True)
    script = ("from pathlib import Path; from logging_setup import LogSettings, LogTransport, run_listener; "
              f"run_listener(LogTransport.create().receiver, LogSettings(dir=Path({str(tmp_path / 'logs')!r})))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT)

    assert result.returncode == 2
    assert result.stderr == (f"edgesense: cannot use the log folder {tmp_path / 'logs'}: "
                             f"{tmp_path / 'logs' / 'edgesense.log'} is a folder; "
                             f"{tmp_path / 'logs' / 'readings.jsonl'} is a folder\n")

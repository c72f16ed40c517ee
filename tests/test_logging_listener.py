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

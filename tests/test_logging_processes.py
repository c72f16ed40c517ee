"""Process-level logging tests: real processes under every start method,
real sockets, real signals, real files (DESIGN.md L1, L3, L4)."""

import collections
import logging
import os
import re
import signal
import time

import pytest

from logging_setup import LogSettings, LogTransport, configure_process, run_listener

WAIT = 20.0
LINE = re.compile(r"^\S+ \S+ (?P<process>\S+)\s+(?P<name>\S+) (?P<level>\S+)\s+(?P<message>.*)$")


def numbered_writer(sender, writer, count, configure_twice=False):
    if configure_twice:
        configure_process(sender)
    configure_process(sender)
    log = logging.getLogger(f"tests.writer{writer}")
    for number in range(count):
        log.info("writer %d record %d", writer, number, extra={"reading": {"writer": writer, "number": number}})


def writer_until_sigterm(sender, written):
    """Logs numbered records until SIGTERM, then stores how many it logged."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    configure_process(sender)
    log = logging.getLogger("tests.burst")
    number = 0
    while not stopping:
        log.info("burst record %d", number)
        number += 1
    written.value = number


def steady_writer(sender, stop):
    configure_process(sender)
    log = logging.getLogger("tests.steady")
    number = 0
    while not stop.is_set():
        log.info("steady record %d", number)
        number += 1
        time.sleep(0.002)


def start_listener(ctx, transport, settings):
    listener = ctx.Process(target=run_listener, args=(transport.receiver, settings), name="log-listener")
    listener.start()
    return listener


def stop_listener(transport, listener):
    assert transport.sender.send_stop()
    listener.join(WAIT)
    assert listener.exitcode == 0


def join_all(processes):
    for process in processes:
        process.join(WAIT)
        assert process.exitcode == 0, process


def log_messages(settings, include_listener=False):
    """The message of every line in the app log, in order."""
    text = (settings.dir / "edgesense.log").read_text()
    lines = [LINE.match(line) for line in text.splitlines()]
    return [line["message"] for line in lines
            if line and (include_listener or line["name"] != "logging_setup.listener")]


@pytest.fixture
def settings(tmp_path):
    return LogSettings(dir=tmp_path / "logs", console=False)


@pytest.fixture
def transport():
    with LogTransport.create() as transport:
        yield transport


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_every_record_of_every_process_once(mp_context, transport, settings):
    listener = start_listener(mp_context, transport, settings)
    writers = [mp_context.Process(target=numbered_writer, args=(transport.sender, w, 400), name=f"sensor:w{w}")
               for w in range(3)]
    for writer in writers:
        writer.start()
    join_all(writers)
    stop_listener(transport, listener)

    expected = {f"writer {w} record {n}" for w in range(3) for n in range(400)}
    counts = collections.Counter(log_messages(settings))
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    readings = (settings.dir / "readings.jsonl").read_text().splitlines()
    assert sorted(readings) == sorted(f'{{"writer":{w},"number":{n}}}' for w in range(3) for n in range(400))


def test_child_configured_twice_logs_once(mp_context, transport, settings):
    listener = start_listener(mp_context, transport, settings)
    writer = mp_context.Process(target=numbered_writer, args=(transport.sender, 0, 50, True))
    writer.start()
    join_all([writer])
    stop_listener(transport, listener)
    assert log_messages(settings) == [f"writer 0 record {n}" for n in range(50)]


def test_root_configured_before_listener_forked_neither_loops_nor_duplicates(
        transport, settings, restore_root_logger):
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    configure_process(transport.sender)  # the article's trap: the listener inherits this QueueHandler
    listener = start_listener(ctx, transport, settings)
    writer = ctx.Process(target=numbered_writer, args=(transport.sender, 1, 50))
    writer.start()
    join_all([writer])
    logging.getLogger("tests.parent").info("parent record")
    stop_listener(transport, listener)

    messages = log_messages(settings, include_listener=True)
    assert messages.count("parent record") == 1
    assert messages.count(f"log listener started, writing to {settings.dir}") == 1
    assert [m for m in messages if m.startswith("writer")] == [f"writer 1 record {n}" for n in range(50)]
    assert len(messages) == 52


def test_sigterm_in_a_burst_loses_nothing(mp_context, transport, settings):
    listener = start_listener(mp_context, transport, settings)
    written = mp_context.Value("l", -1)
    writer = mp_context.Process(target=writer_until_sigterm, args=(transport.sender, written))
    writer.start()
    deadline = time.monotonic() + WAIT
    while not (settings.dir / "edgesense.log").exists() or (settings.dir / "edgesense.log").stat().st_size < 20_000:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(listener.pid, signal.SIGTERM)  # ignored: the supervisor orders the stop
    os.kill(writer.pid, signal.SIGTERM)
    join_all([writer])
    stop_listener(transport, listener)

    assert written.value > 0
    assert log_messages(settings) == [f"burst record {n}" for n in range(written.value)]

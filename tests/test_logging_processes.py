"""Process-level logging tests: real processes under every start method,
real sockets, real signals, real files (DESIGN.md L1, L3, L4)."""

import collections
import gzip
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from helpers import disk_bytes, wait_for
from logging_setup import LogSettings, LogTransport, configure_process, run_listener
from logging_setup.names import oldest_first

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


def log_text(settings):
    """The app log across its rotated files, oldest first ("" before the
    listener made its folder and its first file)."""
    if not settings.dir.is_dir():
        return ""
    rotated = [settings.dir / name for name in oldest_first(os.listdir(settings.dir), "edgesense.log")]
    parts = [gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes() for path in rotated]
    live = settings.dir / "edgesense.log"
    return b"".join(parts + [live.read_bytes() if live.exists() else b""]).decode()


def log_messages(settings, include_listener=False):
    """The message of every line in the app log, in order."""
    lines = [LINE.match(line) for line in log_text(settings).splitlines()]
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


def burst_writer(sender):
    configure_process(sender)
    log = logging.getLogger("tests.burst")
    number = 0
    while True:
        log.info("burst record %d", number)
        number += 1


def last_steady_number(settings):
    """The highest steady record number written so far, or -1."""
    try:
        with open(settings.dir / "edgesense.log", "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 64 * 1024))
            tail = file.read().decode(errors="replace")
    except FileNotFoundError:
        return -1
    numbers = re.findall(r"steady record (\d+)\n", tail)
    return int(numbers[-1]) if numbers else -1


def test_sigkill_of_writers_never_stops_another_process_logging(mp_context, transport, settings):
    listener = start_listener(mp_context, transport, settings)
    stop = mp_context.Event()
    steady = mp_context.Process(target=steady_writer, args=(transport.sender, stop))
    steady.start()
    for _ in range(20):
        victim = mp_context.Process(target=burst_writer, args=(transport.sender,))
        victim.start()
        time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(WAIT)
        seen = last_steady_number(settings)
        wait_for(lambda: last_steady_number(settings) > seen, WAIT, what="a steady record after the kill")
    stop.set()
    join_all([steady])
    stop_listener(transport, listener)

    steady_records = [m for m in log_messages(settings) if m.startswith("steady")]
    assert steady_records == [f"steady record {n}" for n in range(len(steady_records))]


def test_a_new_listener_writes_what_was_sent_while_none_ran(mp_context, transport, settings):
    log_to = mp_context.Process
    first = start_listener(mp_context, transport, settings)
    writer = log_to(target=numbered_writer, args=(transport.sender, 1, 20))
    writer.start()
    join_all([writer])
    wait_for(lambda: "writer 1 record 19" in log_text(settings), WAIT, what="the first batch")
    os.kill(first.pid, signal.SIGKILL)
    first.join(WAIT)

    writer = log_to(target=numbered_writer, args=(transport.sender, 2, 8))  # fits in the socket: none dropped
    writer.start()
    join_all([writer])
    second = start_listener(mp_context, transport, settings)
    writer = log_to(target=numbered_writer, args=(transport.sender, 3, 20))
    writer.start()
    join_all([writer])
    stop_listener(transport, second)

    expected = [f"writer {w} record {n}" for w, count in [(1, 20), (2, 8), (3, 20)] for n in range(count)]
    assert log_messages(settings) == expected


def supervisor_with_listener(receiver, settings, listener_pid, start_method):
    import multiprocessing
    ctx = multiprocessing.get_context(start_method)
    listener = ctx.Process(target=run_listener, args=(receiver, settings), name="log-listener")
    listener.start()
    listener_pid.value = listener.pid
    time.sleep(WAIT)


def process_is_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_listener_exits_when_its_parent_dies(mp_context, transport, settings):
    listener_pid = mp_context.Value("l", 0)
    supervisor = mp_context.Process(target=supervisor_with_listener,
                                    args=(transport.receiver, settings, listener_pid, mp_context.get_start_method()))
    supervisor.start()
    wait_for(lambda: listener_pid.value and (settings.dir / "edgesense.log").exists(), WAIT, what="the listener")
    writer = mp_context.Process(target=numbered_writer, args=(transport.sender, 1, 5))
    writer.start()
    join_all([writer])
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.join(WAIT)
    wait_for(lambda: process_is_gone(listener_pid.value), WAIT, what="the orphaned listener to exit")
    assert log_messages(settings) == [f"writer 1 record {n}" for n in range(5)]




def test_fifty_times_the_budget_never_overfills_the_directory(mp_context, transport, tmp_path):
    budget = 48 * 1024
    settings = LogSettings(dir=tmp_path / "logs", max_file_bytes=16 * 1024, max_total_bytes=budget, console=False)
    listener = start_listener(mp_context, transport, settings)
    wait_for(lambda: (settings.dir / "edgesense.log").exists(), WAIT, what="the listener")
    count = 50 * budget // (2 * 100)  # two writers; a record makes ~100 bytes of log and readings
    writers = [mp_context.Process(target=numbered_writer, args=(transport.sender, w, count)) for w in range(2)]
    for writer in writers:
        writer.start()
    samples = []
    while any(writer.is_alive() for writer in writers):
        samples.append(disk_bytes(settings.dir))
        time.sleep(0.001)
    join_all(writers)
    stop_listener(transport, listener)
    samples.append(disk_bytes(settings.dir))

    assert len(samples) > 100
    assert max(samples) + 4096 <= budget  # 4096: room kept for the supervisor's state file
    assert any(path.suffix == ".gz" for path in settings.dir.iterdir())
    kept = log_messages(settings)
    assert len(kept) > 200
    for w in range(2):  # what is kept of each writer is the end of what it wrote
        numbers = [int(m.rsplit(" ", 1)[1]) for m in kept if m.startswith(f"writer {w} ")]
        assert numbers == list(range(count - len(numbers), count))


def paced_writer(sender, count, per_second):
    configure_process(sender)
    log = logging.getLogger("tests.paced")
    started = time.monotonic()
    for number in range(count):
        time.sleep(max(0.0, started + number / per_second - time.monotonic()))
        log.info("paced record %d", number)


@pytest.mark.skipif(shutil.which("tail") is None, reason="needs tail")
def test_tail_follows_the_live_file_across_rotations(mp_context, transport, tmp_path):
    settings = LogSettings(dir=tmp_path / "logs", max_file_bytes=2048, max_total_bytes=64 * 1024, console=False)
    listener = start_listener(mp_context, transport, settings)
    wait_for(lambda: (settings.dir / "edgesense.log").exists(), WAIT, what="the live file")
    with subprocess.Popen(["tail", "-F", "-n", "+1", str(settings.dir / "edgesense.log")],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as tail:
        try:
            writer = mp_context.Process(target=paced_writer, args=(transport.sender, 200, 100))
            writer.start()
            join_all([writer])
            followed = read_until(tail.stdout, "paced record 199")
        finally:
            tail.kill()
    stop_listener(transport, listener)

    assert len(list(settings.dir.glob("edgesense.log.*"))) >= 5  # several rotations happened
    paced = [line.rsplit(" ", 3)[-3:] for line in followed if "paced record" in line]
    assert [" ".join(words) for words in paced] == [f"paced record {n}" for n in range(200)]


def read_until(stream, last):
    """Lines from ``stream`` until one ends with ``last`` (bounded by WAIT)."""
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(_lines_until(stream, last)), daemon=True)
    reader.start()
    reader.join(WAIT)
    assert not reader.is_alive(), f"tail printed no {last!r}"
    return lines


def _lines_until(stream, last):
    for line in stream:
        yield line.rstrip("\n")
        if line.rstrip("\n").endswith(last):
            return


def burst_without_listener(sender, count, elapsed, burst_done, go_on):
    configure_process(sender)
    log = logging.getLogger("tests.burst")
    started = time.monotonic()
    for number in range(count):
        log.info("burst record %d", number)
    elapsed.value = time.monotonic() - started
    burst_done.set()
    go_on.wait(WAIT)
    log.info("after the listener came back")


def test_burst_without_listener_returns_promptly_and_the_drops_are_logged(mp_context, transport, settings):
    elapsed = mp_context.Value("d", -1.0)
    burst_done, go_on = mp_context.Event(), mp_context.Event()
    writer = mp_context.Process(target=burst_without_listener,
                                args=(transport.sender, 10_000, elapsed, burst_done, go_on))
    writer.start()
    assert burst_done.wait(WAIT)
    assert elapsed.value < 3.0  # one wait of SEND_WAIT_SECONDS, then no more waiting
    listener = start_listener(mp_context, transport, settings)
    probe = logging.makeLogRecord({"msg": "probe", "levelno": logging.INFO, "levelname": "INFO"})
    transport.sender.put_nowait(probe)  # behind every queued record: once written, the listener has drained
    wait_for(lambda: "probe" in log_messages(settings), WAIT, what="the listener to drain")
    go_on.set()
    join_all([writer])
    stop_listener(transport, listener)

    messages = [m for m in log_messages(settings, include_listener=True) if m != "probe"]
    burst = [m for m in messages if m.startswith("burst record")]
    assert burst == [f"burst record {n}" for n in range(len(burst))]
    assert messages[-2:] == [
        "after the listener came back",
        f"{10_000 - len(burst)} log records dropped: the log listener did not drain in time",
    ]


def drop_then_exit(sender, count, burst_done, go_on):
    configure_process(sender)
    for number in range(count):
        logging.getLogger("tests.burst").info("burst record %d", number)
    burst_done.set()
    go_on.wait(WAIT)
    logging.shutdown()  # a clean exit: the root handler's flush reports the drops


def test_a_clean_exit_reports_the_drops_no_later_record_carried(mp_context, transport, settings):
    burst_done, go_on = mp_context.Event(), mp_context.Event()
    writer = mp_context.Process(target=drop_then_exit, args=(transport.sender, 10_000, burst_done, go_on))
    writer.start()
    assert burst_done.wait(WAIT)
    listener = start_listener(mp_context, transport, settings)
    go_on.set()
    join_all([writer])
    stop_listener(transport, listener)

    messages = log_messages(settings)
    burst = [m for m in messages if m.startswith("burst record")]
    assert burst == [f"burst record {n}" for n in range(len(burst))]
    assert messages[len(burst):] == [
        f"{10_000 - len(burst)} log records dropped: the log listener did not drain in time"]

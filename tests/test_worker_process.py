"""Real worker processes under each start method, logging through a real
listener into files in tmp_path.

Timing tolerance: a worker reading every 0.2 s must show a mean period
within 25% of the interval (a read that stretched the period would show
+40%); every wait is bounded by WAIT seconds.
"""

import json
import multiprocessing
import os
import signal
import textwrap
import time
from datetime import datetime

import pytest

from app.config import SensorConfig
from app.heartbeat import Heartbeat
from app.worker import run_worker
from app.worker_exit import WorkerExit
from helpers import wait_for
from logging_setup import LogSettings, LogTransport, run_listener

WAIT = 15.0
INTERVAL = 0.2

PROBES = '''
import os
import time
import warnings

import gpiozero

from sensors.base import Reading, Sensor


class PinProbe(Sensor):
    """A button that proves on close() that its pin is free again."""

    def __init__(self, *, pin: int, marker: str, pin_factory=None):
        self.pin = pin
        self.marker = marker
        self.pin_factory = pin_factory
        self.button = gpiozero.Button(pin, pin_factory=pin_factory)

    def read(self):
        return Reading(self.button.value, "state")

    def close(self):
        if self.button is None:
            return
        self.button.close()
        self.button = None
        gpiozero.Button(self.pin, pin_factory=self.pin_factory).close()
        with open(self.marker, "a") as marker:
            marker.write(f"released {os.getpid()}\\n")


class SlowProbe(Sensor):
    """A read that takes ``seconds``."""

    def __init__(self, *, seconds: float):
        self.seconds = seconds

    def read(self):
        time.sleep(self.seconds)
        return Reading(1, "")


class BrokenProbe:
    """A device that never answers."""

    def read(self):
        raise OSError("no answer from the device")


class EnvProbe(Sensor):
    """Writes where lgpio would put its FIFO (LG_WD) to ``marker``, and
    warns as gpiozero does when it falls back."""

    def __init__(self, *, marker: str):
        with open(marker, "w") as out:
            out.write(os.environ.get("LG_WD", ""))
        warnings.warn("falling back to software timing", RuntimeWarning)

    def read(self):
        return 1


class BuggyProbe:
    """A custom type with a bug in its constructor."""

    def __init__(self):
        self.scale = 1 / 0

    def read(self):
        return self.scale
'''


@pytest.fixture
def probes(tmp_path, monkeypatch):
    """The probe sensor types, importable by every start method's children
    (they inherit sys.path)."""
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    (source_dir / "edgesense_probes.py").write_text(textwrap.dedent(PROBES))
    monkeypatch.syspath_prepend(str(source_dir))
    return "edgesense_probes"


class LogTree:
    """A listener writing into a temporary directory, and the workers sent
    to it; ``finish()`` stops the listener so the files are complete."""

    def __init__(self, ctx, log_dir):
        self.ctx = ctx
        self.dir = log_dir
        self.transport = LogTransport.create()
        settings = LogSettings(dir=log_dir, console=False, compress=False)
        self.listener = ctx.Process(target=run_listener, name="log-listener",
                                    args=(self.transport.receiver, settings))
        self.listener.start()
        self.workers = []

    def start_worker(self, config, pin_factory="mock", previous=None):
        heartbeat = Heartbeat.create(self.ctx, previous=previous)
        stop_reader, stop_writer = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(
            target=run_worker, name=f"sensor:{config.name}", args=(config,),
            kwargs={"pin_factory": pin_factory, "sender": self.transport.sender,
                    "stop": stop_reader, "heartbeat": heartbeat})
        process.start()
        stop_reader.close()
        self.workers.append(process)
        return process, heartbeat, stop_writer

    def finish(self):
        for worker in self.workers:
            worker.join(WAIT)
        self.transport.sender.send_stop()
        self.listener.join(WAIT)
        assert self.listener.exitcode == 0

    def log_lines(self):
        return (self.dir / "edgesense.log").read_text().splitlines()

    def readings(self):
        path = self.dir / "readings.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def close(self):
        for process in self.workers + [self.listener]:
            if process.is_alive():
                process.kill()
                process.join(WAIT)
        self.transport.close()


@pytest.fixture
def tree(mp_context, tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    tree = LogTree(mp_context, log_dir)
    yield tree
    tree.close()


def test_worker_logs_readings_at_its_interval_and_stops_on_request(tree, probes, tmp_path):
    marker = tmp_path / "released"
    config = SensorConfig(name="door", type=f"{probes}:PinProbe", interval=INTERVAL,
                          options={"pin": 17, "marker": str(marker)})
    process, heartbeat, stop = tree.start_worker(config)
    wait_for(lambda: heartbeat.readings >= 5, WAIT, what="five readings")
    stop.send("stop")
    process.join(WAIT)
    assert process.exitcode == WorkerExit.STOPPED
    tree.finish()

    readings = tree.readings()
    assert len(readings) == heartbeat.readings
    assert {json.dumps({k: r[k] for k in ("sensor", "type", "value", "unit")})
            for r in readings} == {json.dumps(
                {"sensor": "door", "type": f"{probes}:PinProbe", "value": 0,
                 "unit": "state"})}
    lines = [line for line in tree.log_lines()
             if "reading sensor=door value=0 unit=state" in line]
    assert len(lines) == len(readings)
    assert all("sensor:door" in line and f" {probes} INFO" in line for line in lines)
    assert marker.read_text() == f"released {process.pid}\n"


def test_worker_keeps_its_period_with_a_read_taking_40_percent(tree, probes):
    config = SensorConfig(name="slow", type=f"{probes}:SlowProbe", interval=INTERVAL,
                          options={"seconds": 0.4 * INTERVAL})
    process, heartbeat, stop = tree.start_worker(config)
    wait_for(lambda: heartbeat.readings >= 11, WAIT, what="eleven readings")
    stop.send("stop")
    process.join(WAIT)
    assert process.exitcode == WorkerExit.STOPPED
    tree.finish()
    stamps = [datetime.fromisoformat(r["ts"]).timestamp() for r in tree.readings()]
    mean_period = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    assert mean_period == pytest.approx(INTERVAL, rel=0.25)


def test_a_long_interval_worker_stops_at_once_when_asked(tree):
    config = SensorConfig(name="patient", type="disk_usage", interval=600.0)
    process, heartbeat, stop = tree.start_worker(config)
    wait_for(lambda: heartbeat.readings == 1, WAIT, what="the first reading")
    asked = time.monotonic()
    stop.send_bytes(b"stop")
    process.join(WAIT)
    assert process.exitcode == WorkerExit.STOPPED
    assert time.monotonic() - asked < 5.0  # not after the 600 s interval
    tree.finish()


def test_worker_gives_lgpio_a_writable_directory_and_logs_warnings(tree, probes, tmp_path, monkeypatch):
    monkeypatch.delenv("LG_WD", raising=False)
    marker = tmp_path / "lg_wd"
    config = SensorConfig(name="env", type=f"{probes}:EnvProbe", interval=600.0,
                          options={"marker": str(marker)})
    process, heartbeat, stop = tree.start_worker(config)
    wait_for(lambda: heartbeat.readings == 1, WAIT, what="the first reading")
    stop.send_bytes(b"stop")
    process.join(WAIT)
    tree.finish()
    lg_wd = marker.read_text()
    assert lg_wd and os.path.isdir(lg_wd) and os.access(lg_wd, os.W_OK)
    warned = [line for line in tree.log_lines() if "py.warnings WARNING" in line]
    assert len(warned) == 1
    assert "sensor:env" in warned[0]
    assert "RuntimeWarning: falling back to software timing" in warned[0]


def test_closing_the_stop_pipe_stops_the_worker(tree, mp_context):
    if mp_context.get_start_method() == "fork":
        pytest.skip("a forked worker inherits the write end, so no EOF comes")
    config = SensorConfig(name="eof", type="disk_usage", interval=INTERVAL)
    process, heartbeat, stop = tree.start_worker(config)
    wait_for(lambda: heartbeat.readings >= 1, WAIT, what="a first reading")
    stop.close()
    process.join(WAIT)
    assert process.exitcode == WorkerExit.STOPPED
    tree.finish()


def test_worker_ignores_sigterm_and_sigint(tree, probes):
    config = SensorConfig(name="calm", type=f"{probes}:SlowProbe", interval=INTERVAL,
                          options={"seconds": 0.0})
    process, heartbeat, stop = tree.start_worker(config)
    wait_for(lambda: heartbeat.readings >= 1, WAIT, what="a first reading")
    os.kill(process.pid, signal.SIGTERM)
    os.kill(process.pid, signal.SIGINT)
    seen = heartbeat.readings
    wait_for(lambda: heartbeat.readings >= seen + 3, WAIT, what="readings after the signals")
    assert process.is_alive()
    stop.send("stop")
    process.join(WAIT)
    assert process.exitcode == WorkerExit.STOPPED
    tree.finish()


def test_failed_reads_log_one_traceback_then_one_line_each_and_exit_non_zero(tree, probes):
    config = SensorConfig(name="dead", type=f"{probes}:BrokenProbe", interval=0.05,
                          max_failures=3)
    process, heartbeat, _stop = tree.start_worker(config)
    process.join(WAIT)
    assert process.exitcode == WorkerExit.READ_FAILURES
    tree.finish()
    text = "\n".join(tree.log_lines())
    assert "sensor=dead read failed (1 in a row, limit 3)" in text
    for count in (2, 3):
        assert (f"sensor=dead read failed again ({count} in a row, limit 3):"
                " OSError: no answer from the device") in text
    assert text.count("Traceback (most recent call last)") == 1
    assert text.count("OSError: no answer from the device") == 3
    assert "sensor=dead stopping after 3 failed reads in a row" in text
    assert "sensor=dead exits: too many failed reads (exit 4)" in text
    assert heartbeat.failures == 3
    assert tree.readings() == []


def test_a_sensor_that_cannot_be_built_logs_why_and_exits_non_zero(tree):
    config = SensorConfig(name="nowhere", type="button", interval=1.0,
                          options={"pin": 99})
    process, _heartbeat, _stop = tree.start_worker(config)
    process.join(WAIT)
    assert process.exitcode == WorkerExit.BUILD_FAILED
    tree.finish()
    errors = [line for line in tree.log_lines() if " ERROR " in line]
    assert len(errors) == 1
    assert "sensor=nowhere cannot be built (type button): PinInvalidPin:" in errors[0]
    assert "sensor:nowhere" in errors[0]
    assert "Traceback" not in "\n".join(tree.log_lines())


def test_no_gpio_here_is_one_line_naming_the_factories_tried(tree):
    from sensors.pins import factory_problem

    if factory_problem(None) is None:
        pytest.skip("this machine has GPIO")
    config = SensorConfig(name="door", type="button", interval=1.0, options={"pin": 17})
    process, _heartbeat, _stop = tree.start_worker(config, pin_factory=None)
    process.join(WAIT)
    assert process.exitcode == WorkerExit.BUILD_FAILED
    tree.finish()
    lines = tree.log_lines()
    [error] = [line for line in lines if " ERROR " in line]
    assert error.endswith(f"sensor=door cannot be built (type button): NoPinFactory: {factory_problem(None)}")
    assert "tried lgpio (" in error and ", native (" in error
    assert [line for line in lines if "WARNING" in line] == []
    assert "Traceback" not in "\n".join(lines)


def test_a_bug_in_a_custom_constructor_is_logged_with_its_traceback(tree, probes):
    config = SensorConfig(name="buggy", type=f"{probes}:BuggyProbe", interval=1.0)
    process, _heartbeat, _stop = tree.start_worker(config)
    process.join(WAIT)
    assert process.exitcode == WorkerExit.BUILD_FAILED
    tree.finish()
    text = "\n".join(tree.log_lines())
    assert (f"sensor=buggy cannot be built (type {probes}:BuggyProbe):"
            " ZeroDivisionError: division by zero") in text
    assert text.count("Traceback (most recent call last)") == 1
    assert "self.scale = 1 / 0" in text


def test_the_same_build_failure_on_the_next_start_is_one_line(tree, probes):
    config = SensorConfig(name="buggy", type=f"{probes}:BuggyProbe", interval=1.0)
    process, first, _stop = tree.start_worker(config)
    process.join(WAIT)
    process, second, _stop = tree.start_worker(config, previous=first)
    process.join(WAIT)
    assert process.exitcode == WorkerExit.BUILD_FAILED
    tree.finish()
    text = "\n".join(tree.log_lines())
    assert text.count("Traceback (most recent call last)") == 1
    assert (f"sensor=buggy cannot be built again (type {probes}:BuggyProbe):"
            " ZeroDivisionError: division by zero") in text
    assert second.build_failure == first.build_failure != 0


def start_and_report(start_method, config, sender, report):
    """A stand-in supervisor: starts a worker, reports its pid, then waits
    (to be SIGKILLed) holding the stop pipe's write end open."""
    ctx = multiprocessing.get_context(start_method)
    stop_reader, stop_writer = ctx.Pipe(duplex=False)
    worker = ctx.Process(
        target=run_worker, args=(config,),
        kwargs={"pin_factory": "mock", "sender": sender, "stop": stop_reader,
                "heartbeat": Heartbeat.create(ctx)})
    worker.start()
    report.send(worker.pid)
    time.sleep(WAIT)
    stop_writer.close()


def has_exited(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.split()[:2] == ["State:", "Z"] for line in status)
    except FileNotFoundError:
        return True


def test_worker_exits_when_its_supervisor_is_killed(tree, mp_context):
    config = SensorConfig(name="orphan", type="disk_usage", interval=0.5)
    report_reader, report_writer = mp_context.Pipe(duplex=False)
    supervisor = mp_context.Process(
        target=start_and_report,
        args=(mp_context.get_start_method(), config, tree.transport.sender,
              report_writer))
    supervisor.start()
    assert report_reader.poll(WAIT)
    worker_pid = report_reader.recv()
    supervisor.kill()
    supervisor.join(WAIT)
    wait_for(lambda: has_exited(worker_pid), WAIT, what="the orphaned worker to exit")
    tree.finish()
    assert any("sensor=orphan stopped" in line for line in tree.log_lines())

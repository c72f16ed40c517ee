"""The worker loop in-process, on injected clocks: no test waits for time.

Timing tolerance: the clocks are fake, so a read planned at t must start at
exactly t; the assertions allow 1e-6 s for float rounding only.
"""

import logging
import math

import pytest

from app.config import SensorConfig
from app.heartbeat import Heartbeat
from app.read_scheduler import ReadScheduler
from app.worker_exit import WorkerExit
from app.worker_loop import serve
from sensors.base import Reading, Sensor

HOUR = 3600.0
TOLERANCE = 1e-6


class FakeClock:
    """Wall and monotonic clocks that move only when told to."""

    def __init__(self):
        self.wall = 1_800_000_000.0
        self.mono = 5_000.0

    def time(self):
        return self.wall

    def monotonic(self):
        return self.mono

    def sleep(self, seconds):
        self.wall += seconds
        self.mono += seconds

    def jump(self, seconds):
        """Move the wall clock only, as NTP does on a board without an RTC."""
        self.wall += seconds


class ScriptedSensor(Sensor):
    """Records when each read starts (monotonic, relative to the start) and
    plays a script: how long each read takes, what it returns or raises."""

    def __init__(self, clock, values=None, duration=0.0, fail_on=(),
                 after_read=None):
        self.clock = clock
        self.origin = clock.mono
        self.values = list(values or [])
        self.duration = duration
        self.fail_on = set(fail_on)
        self.after_read = after_read or {}
        self.starts = []

    def read(self):
        self.starts.append(self.clock.mono - self.origin)
        number = len(self.starts)
        self.clock.sleep(self.duration)
        if number in self.after_read:
            self.after_read[number]()
        if number in self.fail_on or "all" in self.fail_on:
            raise OSError(f"no answer from the device (read {number})")
        value = self.values[number - 1] if self.values else number
        return Reading(value, "V", {"read": number})


class WaitUntil:
    """The loop's ``wait``: sleeps the fake clock, says stop after ``end``
    seconds of monotonic time; ``during`` runs actions at given times."""

    def __init__(self, clock, end, during=None):
        self.clock = clock
        self.end = clock.mono + end
        self.during = sorted((clock.mono + at, action)
                             for at, action in (during or {}).items())
        self.timeouts = []

    def __call__(self, timeout):
        self.timeouts.append(timeout)
        target = self.clock.mono + timeout
        while self.during and self.during[0][0] <= target:
            at, action = self.during.pop(0)
            self.clock.sleep(max(0.0, at - self.clock.mono))
            action()
        self.clock.sleep(max(0.0, target - self.clock.mono))
        return self.clock.mono >= self.end


def config(**overrides):
    fields = {"name": "probe", "type": "tests:ScriptedSensor", "interval": 1.0,
              "max_failures": 3}
    fields.update(overrides)
    return SensorConfig(**fields)


def run(sensor, clock, end, cfg=None, during=None):
    heartbeat = Heartbeat.create()
    wait = WaitUntil(clock, end, during)
    status = serve(cfg or config(), sensor, heartbeat, wait, clock)
    return status, heartbeat, wait


def assert_on_period(starts, expected):
    assert len(starts) == len(expected), starts
    for got, want in zip(starts, expected):
        assert got == pytest.approx(want, abs=TOLERANCE), starts


def test_reads_at_once_then_every_interval():
    clock = FakeClock()
    sensor = ScriptedSensor(clock)
    status, heartbeat, _ = run(sensor, clock, end=10.5)
    assert status is WorkerExit.STOPPED
    assert_on_period(sensor.starts, range(11))
    assert heartbeat.readings == 11
    assert heartbeat.last_value == 11


def test_read_taking_40_percent_of_the_interval_does_not_stretch_the_period():
    clock = FakeClock()
    sensor = ScriptedSensor(clock, duration=0.4)
    run(sensor, clock, end=9.5)
    assert_on_period(sensor.starts, range(10))


def test_overrunning_read_skips_slots_instead_of_bursting(caplog):
    clock = FakeClock()
    sensor = ScriptedSensor(clock, duration=2.5)
    run(sensor, clock, end=9.5)
    assert_on_period(sensor.starts, [0, 3, 6, 9])
    skipped = [r for r in caplog.records if "skipping 2 run(s)" in r.getMessage()]
    assert len(skipped) == 4


@pytest.mark.parametrize("jump", [HOUR, -HOUR])
def test_wall_clock_jump_during_sleep_keeps_the_period(jump, caplog):
    clock = FakeClock()
    sensor = ScriptedSensor(clock)
    run(sensor, clock, end=9.5, during={3.5: lambda: clock.jump(jump)})
    assert_on_period(sensor.starts, range(10))
    jumps = [r for r in caplog.records if "wall clock jumped" in r.getMessage()]
    assert len(jumps) == 1
    assert f"{jump:+.1f} s" in jumps[0].getMessage()


@pytest.mark.parametrize("jump", [HOUR, -HOUR])
def test_wall_clock_jump_during_a_read_keeps_the_period(jump):
    clock = FakeClock()
    sensor = ScriptedSensor(clock, duration=0.3,
                            after_read={3: lambda: clock.jump(jump)})
    run(sensor, clock, end=9.5)
    assert_on_period(sensor.starts, range(10))


def test_small_wall_clock_steps_are_not_jumps(caplog):
    clock = FakeClock()
    sensor = ScriptedSensor(clock)
    run(sensor, clock, end=5.5, during={2.5: lambda: clock.jump(0.5)})
    assert len(sensor.starts) == 6
    assert not [r for r in caplog.records if "jumped" in r.getMessage()]


def test_each_reading_is_one_info_line_and_one_reading_record(caplog):
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    sensor = ScriptedSensor(clock, values=[1.5, 2])
    run(sensor, clock, end=1.5)
    readings = [r for r in caplog.records if hasattr(r, "reading")]
    assert [r.getMessage() for r in readings] == [
        "reading sensor=probe value=1.5 unit=V read=1",
        "reading sensor=probe value=2 unit=V read=2",
    ]
    assert all(r.levelno == logging.INFO and r.name == __name__ for r in readings)
    first = readings[0].reading
    assert list(first) == ["ts", "sensor", "type", "value", "unit", "read"]
    assert first["sensor"] == "probe"
    assert first["type"] == "tests:ScriptedSensor"
    assert (first["value"], first["unit"], first["read"]) == (1.5, "V", 1)
    # ISO 8601 with milliseconds and a UTC offset.
    assert first["ts"][10] == "T" and first["ts"][19] == "."
    assert first["ts"][23] in "+-"


def test_thresholds_warn_once_per_crossing(caplog):
    clock = FakeClock()
    values = [1, 5, 6, 7, 2, 3, -3, -4, 0, 8]
    sensor = ScriptedSensor(clock, values=values)
    cfg = config(warn_above=4.0, warn_below=-1.0)
    run(sensor, clock, end=9.5, cfg=cfg)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING]
    assert warnings == [
        "sensor=probe value=5 V above warn_above=4.0",
        "sensor=probe value=2 V back within limits",
        "sensor=probe value=-3 V below warn_below=-1.0",
        "sensor=probe value=0 V back within limits",
        "sensor=probe value=8 V above warn_above=4.0",
    ]


def test_threshold_lines_of_a_reading_without_unit_have_single_spaces(caplog):
    run(Returns(Reading(5), Reading(2)), FakeClock(), end=1.5, cfg=config(warn_above=4.0))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "sensor=probe value=5 above warn_above=4.0",
        "sensor=probe value=2 back within limits",
    ]


def test_failed_read_is_logged_with_traceback_and_keeps_the_schedule(caplog):
    clock = FakeClock()
    sensor = ScriptedSensor(clock, duration=0.2, fail_on={2, 3})
    status, heartbeat, _ = run(sensor, clock, end=5.5)
    assert status is WorkerExit.STOPPED
    assert_on_period(sensor.starts, range(6))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "sensor=probe read failed (1 in a row, limit 3)",
        "sensor=probe read failed (2 in a row, limit 3)",
    ]
    assert all(r.exc_info and r.exc_info[0] is OSError for r in errors)
    assert heartbeat.readings == 4
    assert heartbeat.failures == 0


class Returns(Sensor):
    """A sensor whose every read returns (or raises) the next of ``results``."""

    def __init__(self, *results):
        self.results = list(results)

    def read(self):
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result


def error_records(caplog):
    return [(r.getMessage(), r.exc_info[0] if r.exc_info else None)
            for r in caplog.records if r.levelno == logging.ERROR]


def test_the_same_failure_again_is_one_line_and_a_new_kind_has_its_traceback(caplog):
    no_answer = OSError("no answer from the device")
    sensor = Returns(no_answer, no_answer, TimeoutError("bus stuck"), no_answer, 7, no_answer, 8)
    run(sensor, FakeClock(), end=6.5, cfg=config(max_failures=10))
    assert error_records(caplog) == [
        ("sensor=probe read failed (1 in a row, limit 10)", OSError),
        ("sensor=probe read failed again (2 in a row, limit 10): OSError: no answer from the device", None),
        ("sensor=probe read failed (3 in a row, limit 10)", TimeoutError),
        ("sensor=probe read failed again (4 in a row, limit 10): OSError: no answer from the device", None),
        ("sensor=probe read failed again (1 in a row, limit 10): OSError: no answer from the device", None),
    ]


def test_a_read_that_returns_none_is_one_line_naming_the_class(caplog):
    run(Returns(None), FakeClock(), end=1.5)
    name = f"{Returns.__module__}.Returns"
    assert error_records(caplog) == [
        (f"sensor=probe read failed (1 in a row, limit 3): {name}.read() returned None,"
         " not a finite number or a Reading", None),
        (f"sensor=probe read failed again (2 in a row, limit 3): {name}.read() returned None,"
         " not a finite number or a Reading", None),
    ]


class PlainDriver:
    """A custom type that does not subclass Sensor."""

    def read(self):
        return Reading(math.nan, "C")


def test_a_custom_class_is_named_as_written_not_as_its_wrapper(caplog):
    from sensors.registry import CustomSensor

    run(CustomSensor(PlainDriver()), FakeClock(), end=0.5)
    assert error_records(caplog) == [
        (f"sensor=probe read failed (1 in a row, limit 3): {PlainDriver.__module__}.PlainDriver.read()"
         " returned a Reading whose value is nan, not a finite number", None)]


def test_max_failures_in_a_row_ends_the_loop():
    clock = FakeClock()
    sensor = ScriptedSensor(clock, fail_on={"all"})
    status, heartbeat, _ = run(sensor, clock, end=60)
    assert status is WorkerExit.READ_FAILURES
    assert len(sensor.starts) == 3
    assert heartbeat.failures == 3
    assert heartbeat.readings == 0


@pytest.mark.parametrize("value", [None, math.nan, "12"])
def test_a_read_that_is_not_a_number_counts_as_failed(value, caplog):
    clock = FakeClock()
    sensor = ScriptedSensor(clock, values=[value] * 5)
    status, _, _ = run(sensor, clock, end=60)
    assert status is WorkerExit.READ_FAILURES
    assert "not a finite number" in caplog.text


def test_loop_sleeps_until_the_next_read_and_no_shorter():
    clock = FakeClock()
    sensor = ScriptedSensor(clock, duration=0.25)
    _, _, wait = run(sensor, clock, end=4.5, cfg=config(interval=1.5))
    assert wait.timeouts == pytest.approx([1.25] * 3, abs=TOLERANCE)


def test_heartbeat_records_the_last_read():
    clock = FakeClock()
    sensor = ScriptedSensor(clock, duration=0.25)
    _, heartbeat, _ = run(sensor, clock, end=2.5)
    start = sensor.origin
    assert heartbeat.read_started == pytest.approx(start + 2)
    assert heartbeat.read_ended == pytest.approx(start + 2.25)
    assert not heartbeat.reading
    assert heartbeat.tick == pytest.approx(start + 2.25)
    assert heartbeat.last_reading_time == pytest.approx(clock.wall - 0.75)


def test_stop_before_the_first_wait_ends_after_one_read():
    clock = FakeClock()
    sensor = ScriptedSensor(clock)
    status, heartbeat, _ = run(sensor, clock, end=0)
    assert status is WorkerExit.STOPPED
    assert heartbeat.readings == 1


def test_scheduler_is_a_schedule_scheduler_with_its_own_jobs():
    clock = FakeClock()
    first, second = ReadScheduler(clock), ReadScheduler(clock)
    first.add(1.0, lambda: None)
    assert len(first.jobs) == 1 and second.jobs == []
    assert first.idle_seconds == 0.0


def test_a_zero_interval_is_refused():
    with pytest.raises(ValueError, match="interval must be greater than 0"):
        ReadScheduler(FakeClock()).add(0, lambda: None)

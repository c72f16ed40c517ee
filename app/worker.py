"""The worker process: one sensor, read on its own schedule.

``run_worker`` is the target of each ``sensor:<name>`` process. It ignores
SIGINT and SIGTERM (the supervisor orchestrates the stop), configures
logging, builds the sensor, then sleeps until the next read is due or until
it is asked to stop, whichever comes first. It never polls.

The read runs as a ``schedule`` job, with schedule's three traps closed
(DESIGN.md, Sensors): a read that raises is caught and counted inside the
job, the next read is anchored to the planned time rather than to the end of
the read, and a jump of the wall clock shifts the plan instead of stalling it
or firing a burst of catch-up reads.
"""

import datetime
import enum
import io
import json
import logging
import math
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from importlib.metadata import entry_points
from multiprocessing import connection

import schedule
from gpiozero import Device
from gpiozero.exc import GPIOZeroError

from logging_setup import READING_ATTR, configure_process
from logging_setup.signals import ignore_tree_signals
from sensors import registry
from sensors.base import as_reading

log = logging.getLogger(__name__)

JUMP_TOLERANCE = 1.0
"""Seconds by which wall-clock and monotonic progress may differ before the
difference counts as a jump of the wall clock."""


class WorkerExit(enum.IntEnum):
    """The worker's exit status: the supervisor's view of why it ended."""

    STOPPED = 0        # asked to stop, or the supervisor is gone
    CRASHED = 1        # a bug in the loop itself (logged with its traceback)
    BUILD_FAILED = 3   # the sensor could not be built (options, pin, device)
    READ_FAILURES = 4  # max_failures reads failed in a row
    ORPHANED = 5       # the supervisor died while a read did not return


ORPHAN_GRACE = 2.0
"""Seconds the loop has to end on its own after the supervisor died before
the orphan watch ends the process."""


class _Slot:
    """One double in the heartbeat's shared array."""

    def __init__(self, index, kind=float):
        self.index = index
        self.kind = kind

    def __get__(self, heartbeat, owner=None):
        if heartbeat is None:
            return self
        return self.kind(heartbeat.array[self.index])

    def __set__(self, heartbeat, value):
        heartbeat.array[self.index] = value


class Heartbeat:
    """Shared memory the supervisor reads without a message round trip:
    when the loop last ticked, when the current read started and ended
    (time.monotonic), and the last reading's value and wall-clock time.

    Create it in the supervisor with ``Heartbeat.create(ctx)`` and pass it to
    the worker as a Process argument (it pickles under every start method).
    Times are ``time.monotonic()`` (system-wide, so comparable across
    processes) except ``last_reading_time`` (``time.time()``). A read is in
    progress while ``read_started > read_ended``. The loop ticks before each
    read and again before it sleeps; ``next_read`` is when it will wake for
    the next read, so a ``tick`` older than ``next_read`` plus a read's
    duration means a stuck loop. Each field is one double written without a
    lock: read each once and treat it as a hint.
    """

    FIELDS = ("tick", "read_started", "read_ended", "next_read", "last_value",
              "last_reading_time", "readings", "failures")

    tick = _Slot(0)
    read_started = _Slot(1)
    read_ended = _Slot(2)
    next_read = _Slot(3)
    last_value = _Slot(4)
    last_reading_time = _Slot(5)
    readings = _Slot(6, int)
    failures = _Slot(7, int)

    def __init__(self, array):
        self.array = array

    @classmethod
    def create(cls, ctx=multiprocessing):
        heartbeat = cls(ctx.RawArray("d", len(cls.FIELDS)))
        heartbeat.last_value = math.nan
        return heartbeat

    @property
    def reading(self):
        """True while a read is in progress."""
        return self.read_started > self.read_ended

    def snapshot(self):
        """Every field at once, as a dict."""
        return {name: getattr(self, name) for name in self.FIELDS}


class SystemClock:
    """The real clocks. Tests pass an object with the same two methods."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


class ReadScheduler(schedule.Scheduler):
    """A ``schedule.Scheduler`` that keeps every job on its period.

    Plain schedule computes a job's next run from the wall clock after the
    job returns, so a 0.4 s job at a 1 s interval runs every 1.4 s, and a
    wall-clock jump back by an hour stalls it for an hour. This scheduler:

    - reads time from ``clock`` (``time()`` and ``monotonic()``), so tests
      can jump it instead of waiting;
    - plans the next run from the planned time of the one that just ran; if
      that is already past (a job that overran its interval) it skips to the
      next slot still ahead: no burst of catch-up runs;
    - compares wall-clock progress with monotonic progress each time it is
      asked, and when they differ by more than ``jump_tolerance`` seconds it
      shifts every job by the difference, so jobs stay on their period.

    Jobs must not raise (schedule lets the exception out and the job stays
    overdue); wrap them. Times are naive UTC, so a daylight-saving change is
    not a jump. New jobs are planned with ``add`` (first run at once).
    """

    def __init__(self, clock=SystemClock, jump_tolerance=JUMP_TOLERANCE):
        super().__init__()
        self.clock = clock
        self.jump_tolerance = jump_tolerance
        self._last_clocks = None

    def now(self):
        stamp = datetime.datetime.fromtimestamp(self.clock.time(), datetime.UTC)
        return stamp.replace(tzinfo=None)

    def add(self, interval, job_func):
        """Run ``job_func`` now and then every ``interval`` seconds."""
        if not interval > 0:
            raise ValueError(f"interval must be greater than 0, not {interval!r}")
        job = self.every(interval).seconds.do(job_func)
        job.next_run = self.now()
        return job

    def run_pending(self):
        self.follow_wall_clock()
        now = self.now()
        for job in sorted(job for job in self.jobs if job.next_run <= now):
            planned = job.next_run
            self._run_job(job)
            # A jump during the run moved the other jobs; move this one too.
            job.next_run = self._slot_after(planned + self.follow_wall_clock(), job)

    @property
    def idle_seconds(self):
        self.follow_wall_clock()
        if not self.jobs:
            return None
        return max(0.0, (self.next_run - self.now()).total_seconds())

    def _slot_after(self, planned, job):
        period = datetime.timedelta(**{job.unit: job.interval})
        next_run = planned + period
        now = self.now()
        if next_run <= now:
            skipped = (now - planned) // period
            next_run = planned + (skipped + 1) * period
            log.warning("a run took longer than its %s s interval; skipping %d"
                        " run(s) to stay on the period",
                        period.total_seconds(), skipped)
        return next_run

    def follow_wall_clock(self):
        """Shift every job by a wall-clock jump since the last call; return
        the shift (zero when the clock did not jump)."""
        wall, mono = self.clock.time(), self.clock.monotonic()
        last_clocks, self._last_clocks = self._last_clocks, (wall, mono)
        shift = datetime.timedelta(0)
        if last_clocks is None:
            return shift
        jump = (wall - last_clocks[0]) - (mono - last_clocks[1])
        if abs(jump) > self.jump_tolerance:
            shift = datetime.timedelta(seconds=jump)
            for job in self.jobs:
                job.next_run += shift
            log.warning("the wall clock jumped by %+.1f s; readings keep"
                        " their period", jump)
        return shift


class ThresholdWatch:
    """``warn_above`` / ``warn_below`` as WARNING records: one when a reading
    leaves the band, one when it comes back, none while it stays."""

    def __init__(self, name, warn_above=None, warn_below=None):
        self.name = name
        self.warn_above = warn_above
        self.warn_below = warn_below
        self.state = "within"

    def check(self, reading, logger):
        state = self._state_of(reading.value)
        if state == self.state:
            return
        self.state = state
        value = format_value(reading.value)
        if state == "above":
            logger.warning("sensor=%s value=%s %s above warn_above=%s",
                           self.name, value, reading.unit, self.warn_above)
        elif state == "below":
            logger.warning("sensor=%s value=%s %s below warn_below=%s",
                           self.name, value, reading.unit, self.warn_below)
        else:
            logger.warning("sensor=%s value=%s %s back within limits",
                           self.name, value, reading.unit)

    def _state_of(self, value):
        if self.warn_above is not None and value > self.warn_above:
            return "above"
        if self.warn_below is not None and value < self.warn_below:
            return "below"
        return "within"


def format_value(value):
    """A reading's value as it appears in the log line: integers as they
    are, other numbers with up to 6 significant digits."""
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def _format_field(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_value(value)
    text = str(value)
    if not text or any(char.isspace() or char in '="' for char in text):
        return json.dumps(text)
    return text


def reading_line(name, reading):
    """The greppable text of a reading (README, Sensors):
    ``reading sensor=<name> value=<value> unit=<unit> [<key>=<value> ...]``,
    with ``-`` for an empty unit."""
    fields = [f"sensor={name}", f"value={format_value(reading.value)}",
              f"unit={reading.unit or '-'}"]
    fields += [f"{key}={_format_field(value)}"
               for key, value in reading.extra.items()]
    return "reading " + " ".join(fields)


def iso_timestamp(epoch_seconds):
    """ISO 8601 local time with its UTC offset, to the millisecond."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds).astimezone()
    return moment.isoformat(timespec="milliseconds")


class ReadJob:
    """One read of the sensor, as a schedule job that never raises.

    Success: a reading logged at INFO through the sensor module's logger
    (also a JSON line in readings.jsonl), thresholds checked, heartbeat
    updated. Failure: an ERROR with the traceback and one more in
    ``failures`` (consecutive; a success resets it).
    """

    def __init__(self, config, sensor, heartbeat, clock=SystemClock):
        self.config = config
        self.sensor = sensor
        self.heartbeat = heartbeat
        self.clock = clock
        self.logger = logging.getLogger(sensor.log_name)
        self.thresholds = ThresholdWatch(config.name, config.warn_above,
                                         config.warn_below)
        self.failures = 0

    def __call__(self):
        heartbeat = self.heartbeat
        heartbeat.read_started = self.clock.monotonic()
        try:
            reading = as_reading(self.sensor.read())
        except Exception:
            heartbeat.read_ended = self.clock.monotonic()
            self._failed()
            return
        heartbeat.read_ended = self.clock.monotonic()
        self.failures = heartbeat.failures = 0
        self._log(reading)
        heartbeat.last_value = reading.value
        heartbeat.last_reading_time = self.clock.time()
        heartbeat.readings = heartbeat.readings + 1
        self.thresholds.check(reading, self.logger)

    def _failed(self):
        self.failures += 1
        self.heartbeat.failures = self.failures
        log.error("sensor=%s read failed (%d in a row, limit %d)",
                  self.config.name, self.failures, self.config.max_failures,
                  exc_info=True)

    def _log(self, reading):
        record = {"ts": iso_timestamp(self.clock.time()),
                  "sensor": self.config.name, "type": self.config.type,
                  "value": reading.value, "unit": reading.unit}
        for key, value in reading.extra.items():
            record.setdefault(key, value)
        self.logger.info(reading_line(self.config.name, reading),
                         extra={READING_ATTR: record})


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


class StopWaiter:
    """Sleeps until a timeout, the stop pipe or the supervisor's death.

    ``stop`` becomes readable on a message or on EOF. EOF comes only when
    every copy of the write end is closed, and a forked worker inherits one,
    so under ``fork`` the supervisor must send a message; the parent's
    sentinel covers a supervisor that died while a copy is still open.
    """

    def __init__(self, stop):
        self.handles = [stop]
        parent = multiprocessing.parent_process()
        if parent is not None:
            self.handles.append(parent.sentinel)

    def __call__(self, timeout):
        """True when the worker should stop."""
        return bool(connection.wait(self.handles, timeout))


def serve(config, sensor, heartbeat, wait, clock=SystemClock):
    """Read ``sensor`` every ``config.interval`` seconds until ``wait``
    returns True; the loop of the worker process, callable in-process.

    ``wait(timeout)`` sleeps up to ``timeout`` seconds and says whether to
    stop. Returns the WorkerExit status.
    """
    scheduler = ReadScheduler(clock)
    job = ReadJob(config, sensor, heartbeat, clock)
    scheduler.add(config.interval, job)
    while True:
        heartbeat.tick = clock.monotonic()
        scheduler.run_pending()
        if job.failures >= config.max_failures:
            log.error("sensor=%s stopping after %d failed reads in a row",
                      config.name, job.failures)
            return WorkerExit.READ_FAILURES
        idle = scheduler.idle_seconds
        heartbeat.tick = clock.monotonic()
        heartbeat.next_read = heartbeat.tick + idle
        if wait(idle):
            return WorkerExit.STOPPED


def open_pin_factory(name):
    """The gpiozero pin factory called ``name`` (as ``GPIOZERO_PIN_FACTORY``
    names them: lgpio, rpigpio, pigpio, native, mock), or None to let
    gpiozero pick its default (honouring ``GPIOZERO_PIN_FACTORY``) when the
    first device is built."""
    if name is None:
        return None
    factories = {entry.name.lower(): entry
                 for entry in entry_points(group="gpiozero_pin_factories")}
    entry = factories.get(name.lower())
    if entry is None:
        raise ValueError(f"unknown pin factory {name!r}"
                         f" (known: {', '.join(sorted(factories))})")
    return entry.load()()


def _close_pin_factory():
    factory, Device.pin_factory = Device.pin_factory, None
    if factory is not None:
        factory.close()


_SELF_EXPLAINING_ERRORS = (OSError, registry.SensorTypeError, GPIOZeroError)
"""Build errors whose message says it all (no such file, pin in use, bad
pin): logged as one line. Any other error, such as a bug in a custom type,
is logged with its traceback."""


def _build(config, pin_factory_name):
    cls = registry.resolve(config.type)
    factory = None
    if registry.uses_gpio(cls):
        factory = open_pin_factory(pin_factory_name)
        if factory is not None:
            Device.pin_factory = factory
    return registry.build(config.type, config.options, pin_factory=factory)


def _release(config, sensor):
    try:
        sensor.close()
    except Exception:
        log.error("sensor=%s close failed", config.name, exc_info=True)
    _close_pin_factory()


def _exit_when_orphaned():
    """End the process soon after the supervisor dies, even while a read
    never returns: the loop only sees the supervisor's death between reads,
    and an orphan that ignores SIGTERM would hold its pins for good. Exiting
    closes the process's GPIO lines, which releases the pins."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        connection.wait([parent.sentinel])
        time.sleep(ORPHAN_GRACE)
        log.error("sensor process %d: the supervisor is gone and the read does not return; exiting",
                  os.getpid())
        os._exit(WorkerExit.ORPHANED)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def run_worker(sensor, *, pin_factory, sender, stop, heartbeat, log_level="INFO"):
    """Process target for ``sensor:<name>``; exits with a WorkerExit status.

    ``sensor`` is the SensorConfig; ``pin_factory`` a gpiozero factory name or
    None; ``sender`` the LogSender; ``stop`` the read end of a
    ``ctx.Pipe(duplex=False)``; ``heartbeat`` a Heartbeat.
    """
    ignore_tree_signals()
    configure_process(sender, sending_level(log_level))
    _exit_when_orphaned()
    # gpiozero reports its fallbacks (software PWM, pin factory) as warnings:
    # send them to the log files rather than to stderr alone.
    logging.captureWarnings(True)
    sys.stdout = PrintedLines(logging.getLogger("sensor.stdout"), logging.INFO)
    sys.stderr = PrintedLines(logging.getLogger("sensor.stderr"), logging.WARNING)
    multiprocessing.current_process().name = f"sensor:{sensor.name}"
    # lgpio makes a notification FIFO in LG_WD (default: the working
    # directory, which a hardened service cannot write).
    os.environ.setdefault("LG_WD", os.environ.get("RUNTIME_DIRECTORY")
                          or tempfile.gettempdir())
    status = _run(sensor, pin_factory, stop, heartbeat)
    # multiprocessing children skip logging's exit hook: flushing here
    # reports records dropped while the listener was away.
    logging.shutdown()
    raise SystemExit(status)


def sending_level(log_level):
    """The level from which a worker sends records: readings are INFO
    records and belong in readings.jsonl whatever the log level, so a
    worker sends INFO at least; the listener applies ``log_level`` to the
    text log and the console."""
    return min(logging.getLevelName(log_level.upper()), logging.INFO)


def _run(config, pin_factory_name, stop, heartbeat):
    try:
        sensor = _build(config, pin_factory_name)
    except Exception as exc:
        log.error("sensor=%s cannot be built (type %s): %s: %s", config.name,
                  config.type, type(exc).__name__, exc,
                  exc_info=not isinstance(exc, _SELF_EXPLAINING_ERRORS))
        _close_pin_factory()
        return WorkerExit.BUILD_FAILED
    log.info("sensor=%s started: type %s every %s s", config.name,
             config.type, config.interval)
    try:
        status = serve(config, sensor, heartbeat, StopWaiter(stop))
    except Exception:
        log.critical("sensor=%s worker loop crashed", config.name, exc_info=True)
        status = WorkerExit.CRASHED
    finally:
        _release(config, sensor)
    if status is WorkerExit.STOPPED:
        log.info("sensor=%s stopped", config.name)
    else:
        log.info("sensor=%s exits with status %d (%s)", config.name,
                 status, status.name.lower())
    return status

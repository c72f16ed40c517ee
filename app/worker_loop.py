"""The worker loop: read the sensor on its schedule until told to stop.

The read runs as a job of the ReadScheduler (``app.read_scheduler``), with
schedule's three traps closed (DESIGN.md, Sensors): a read that raises is
caught and counted inside the job, the next read is anchored to the planned
time rather than to the end of the read, and a jump of the wall clock
shifts the plan instead of stalling it or firing a burst of catch-up reads.
Everything here runs in-process: clocks and the wait are passed in.
"""

import logging

from app.read_scheduler import ReadScheduler, SystemClock
from app.readings import reading_message, reading_record
from app.thresholds import ThresholdWatch
from app.worker_exit import WorkerExit
from logging_setup import READING_ATTR
from sensors.base import BadReading, as_reading
from sensors.registry import CustomSensor

log = logging.getLogger(__name__)


class FailureKinds:
    """The kinds of failure (exception type and message) seen so far, the
    most recent ``limit`` of them."""

    def __init__(self, limit=32):
        self.limit = limit
        self.seen = {}

    def add(self, error):
        """Record ``error``'s kind; True when it was seen before."""
        kind = (type(error), str(error))
        seen = self.seen.pop(kind, None) is not None
        self.seen[kind] = True
        while len(self.seen) > self.limit:
            del self.seen[next(iter(self.seen))]
        return seen


def one_line(error):
    """``OSError: no answer``: an exception as one line of text.

    >>> one_line(OSError("no answer\\nfrom the device"))
    'OSError: no answer from the device'
    """
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def sensor_class_name(sensor):
    """The sensor's class as its author wrote it (a custom type that does
    not subclass Sensor, not the wrapper it runs in)."""
    cls = type(sensor.wrapped) if isinstance(sensor, CustomSensor) else type(sensor)
    return f"{cls.__module__}.{cls.__qualname__}"


class ReadJob:
    """One read of the sensor, as a schedule job that never raises.

    Success: a reading logged at INFO through the sensor module's logger
    (also a JSON line in readings.jsonl), thresholds checked, heartbeat
    updated. Failure: one more in ``failures`` (consecutive; a success
    resets it) and an ERROR: with its traceback the first time a failure of
    its kind (exception type and message) occurs, as one line with the
    count when the same failure comes again, so a sensor that fails every
    interval does not fill the log with one traceback after another. A
    ``read()`` that returns something that is not a reading (None, NaN) is
    one line naming the sensor's class and what it returned.
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
        self.kinds_seen = FailureKinds()

    def __call__(self):
        heartbeat = self.heartbeat
        heartbeat.read_started = self.clock.monotonic()
        try:
            reading = as_reading(self.sensor.read())
        except Exception as error:
            heartbeat.read_ended = self.clock.monotonic()
            self._failed(error)
            return
        heartbeat.read_ended = self.clock.monotonic()
        self.failures = heartbeat.failures = 0
        self._log(reading)
        heartbeat.last_value = reading.value
        heartbeat.last_reading_time = self.clock.time()
        heartbeat.readings = heartbeat.readings + 1
        self.thresholds.check(reading, self.logger)

    def _failed(self, error):
        self.failures += 1
        self.heartbeat.failures = self.failures
        again = " again" if self.kinds_seen.add(error) else ""
        count = f"({self.failures} in a row, limit {self.config.max_failures})"
        if isinstance(error, BadReading):
            log.error("sensor=%s read failed%s %s: %s.read() %s", self.config.name, again,
                      count, sensor_class_name(self.sensor), error)
        elif again:
            log.error("sensor=%s read failed again %s: %s", self.config.name, count,
                      one_line(error))
        else:
            log.error("sensor=%s read failed %s", self.config.name, count, exc_info=error)

    def _log(self, reading):
        record = reading_record(self.config, reading, self.clock.time())
        self.logger.info(reading_message(self.config.name, reading),
                         extra={READING_ATTR: record})


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
        if wait(idle):
            return WorkerExit.STOPPED

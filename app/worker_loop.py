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
from sensors.base import as_reading

log = logging.getLogger(__name__)


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

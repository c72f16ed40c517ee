"""The worker process: one sensor, read on its own schedule.

``run_worker`` is the target of each ``sensor:<name>`` process. It ignores
SIGINT and SIGTERM (the supervisor orchestrates the stop), configures
logging, builds the sensor, then runs the worker loop (``app.worker_loop``),
which sleeps until the next read is due or until it is asked to stop,
whichever comes first. It never polls.
"""

import logging
import multiprocessing
import os
import sys
import threading
import time
import zlib
from multiprocessing import connection

from gpiozero import Device
from gpiozero.exc import GPIOZeroError

from app.output_capture import PrintedLines
from app.worker_exit import WorkerExit, describe_exit
from app.worker_loop import one_line, serve
from logging_setup import configure_process
from logging_setup.signals import ignore_tree_signals
from sensors import registry
from sensors.pins import NoPinFactory, give_lgpio_a_work_dir, open_pin_factory

log = logging.getLogger(__name__)

ORPHAN_GRACE = 2.0
"""Seconds the loop has to end on its own after the supervisor died before
the orphan watch ends the process."""


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


def _close_pin_factory():
    factory, Device.pin_factory = Device.pin_factory, None
    if factory is not None:
        factory.close()


_SELF_EXPLAINING_ERRORS = (OSError, registry.SensorTypeError, GPIOZeroError, NoPinFactory)
"""Build errors whose message says it all (no such file, pin in use, bad
pin): logged as one line. Any other error, such as a bug in a custom type,
is logged with its traceback."""


def build_sensor(config, pin_factory_name):
    """The sensor of ``config`` (a SensorConfig), on the pin factory called
    ``pin_factory_name`` (see ``sensors.pins.open_pin_factory``) when its
    type uses GPIO; that factory becomes the process's default."""
    cls = registry.resolve(config.type)
    factory = None
    if registry.uses_gpio(cls):
        factory = Device.pin_factory = open_pin_factory(pin_factory_name)
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
    give_lgpio_a_work_dir()
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


def _log_build_failure(config, error, heartbeat):
    """One ERROR line; with the traceback when the error does not explain
    itself, unless the previous start failed the same way (the heartbeat
    carries its fingerprint), so a restart loop does not repeat it."""
    fingerprint = zlib.crc32(f"{type(error).__qualname__}: {error}".encode()) or 1
    again = heartbeat.build_failure == fingerprint
    heartbeat.build_failure = fingerprint
    log.error("sensor=%s cannot be built%s (type %s): %s", config.name, " again" if again else "",
              config.type, one_line(error),
              exc_info=not (again or isinstance(error, _SELF_EXPLAINING_ERRORS)))


def _run(config, pin_factory_name, stop, heartbeat):
    try:
        sensor = build_sensor(config, pin_factory_name)
    except Exception as exc:
        _log_build_failure(config, exc, heartbeat)
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
        log.info("sensor=%s exits: %s", config.name, describe_exit(status))
    return status

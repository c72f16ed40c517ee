"""``edgesense status``: the state file the supervisor writes, for a person.

The state file (written atomically by the supervisor on every change)::

    {"supervisor": {"pid": 812, "started": 1764078000.0, "state": "running",
                    "updated": 1764078012.0},
     "listener": {"pid": 815, "state": "running", "restarts": 0,
                  "last_exit": null, "next_retry": null},
     "sensors": [{"name": "door", "type": "button", "pid": 820,
                  "state": "running", "restarts": 0, "last_exit": null,
                  "last_reading": {"value": 1.0, "ts": 1764078010.5},
                  "next_retry": null}]}

Timestamps are epoch seconds. The supervisor's optional ``state`` is its
phase (starting, running, stopping, and "stopped" once it has stopped
cleanly); its optional ``updated`` is when the file was written. The
listener's optional ``state``, ``last_exit`` and ``next_retry`` are in the
same words as a sensor's.
"""

import datetime
import json
import os
import time
from pathlib import Path

from app.states import SupervisorPhase
from app.treelock import lock_held
from logging_setup.names import READINGS_FILE_NAME

READINGS_TAIL_BYTES = 16384
"""How much of the end of readings.jsonl ``status`` reads: the last reading
of every sensor of a node is in it, and the file is never read whole."""


PHASES = tuple(phase.value for phase in SupervisorPhase if phase is not SupervisorPhase.STOPPED)
"""The supervisor's ``state`` words while it runs."""

PID_MAX_LIMIT = 1 << 22
"""Linux's highest possible process id (``/proc/sys/kernel/pid_max`` is at most this)."""


class StateFileError(Exception):
    """The state file is missing or unreadable: one line for the person."""


def read_state(path):
    """The state file's text and its parsed content."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StateFileError(f"edgesense is not running: no state file at {path}") from None
    except OSError as error:
        raise StateFileError(f"cannot read the state file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise StateFileError(f"{path}: not a state file (not UTF-8 text at byte {error.start})") from None
    try:
        state = json.loads(text)
    except ValueError as error:
        raise StateFileError(f"{path}: not a state file (invalid JSON: {error})") from None
    if not isinstance(state, dict) or not isinstance(state.get("supervisor"), dict):
        raise StateFileError(f"{path}: not a state file (no supervisor entry)")
    pid = state["supervisor"].get("pid")
    if not _is_pid(pid):
        raise StateFileError(f"{path}: not a state file (supervisor pid {json.dumps(pid)} "
                             "is not a process id)")
    return text, state


def _is_pid(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= PID_MAX_LIMIT


def process_alive(pid):
    """Whether ``pid`` is a live process: the fallback for a state file
    without a lock file beside it. (A pid reused after a reboot would look
    alive; comparing start times instead is wrong on a board without a
    real-time clock, whose wall clock jumps when NTP syncs.)"""
    if not _is_pid(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user (the edgesense service user)
    return True


def latest_readings(log_dir, tail_bytes=READINGS_TAIL_BYTES):
    """Sensor name -> its newest ``{"value", "ts"}`` (epoch seconds) in the
    last ``tail_bytes`` of ``readings.jsonl``; empty when there is no such
    file. The supervisor refreshes the state file only every few seconds,
    the listener writes every reading as it comes."""
    try:
        with open(Path(log_dir) / READINGS_FILE_NAME, "rb") as file:
            start = max(0, file.seek(0, os.SEEK_END) - tail_bytes)
            file.seek(start)
            tail = file.read(tail_bytes)
    except OSError:
        return {}
    lines = tail.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first line is cut
    latest = {}
    for line in lines:
        reading = _parse_reading(line)
        if reading is not None:
            name, value, stamp = reading
            if stamp >= latest.get(name, {"ts": stamp})["ts"]:
                latest[name] = {"value": value, "ts": stamp}
    return latest


def _parse_reading(line):
    """``(sensor, value, epoch seconds)`` of one readings.jsonl line, or None."""
    try:
        reading = json.loads(line)
        stamp = datetime.datetime.fromisoformat(reading["ts"]).timestamp()
        name = reading["sensor"]
    except (ValueError, TypeError, KeyError):
        return None
    return (name, reading.get("value"), stamp) if isinstance(name, str) else None


def with_latest_readings(state, readings):
    """``state`` with each sensor's last reading replaced by a newer one
    from ``readings`` (as given by ``latest_readings``)."""
    sensors = []
    for sensor in state.get("sensors") or []:
        if isinstance(sensor, dict) and sensor.get("name") in readings:
            newer = readings[sensor["name"]]
            known = sensor.get("last_reading")
            known_stamp = known.get("ts") if isinstance(known, dict) else None
            if not _is_number(known_stamp) or newer["ts"] > known_stamp:
                sensor = dict(sensor, last_reading=newer)
        sensors.append(sensor)
    return dict(state, sensors=sensors)


def describe_state(state, now=None, lock_file=None):
    """The state as lines for a person, and whether edgesense is running:
    whether a supervisor holds ``lock_file`` (``app/treelock.py``), or,
    without a lock file, whether the state's supervisor pid is alive."""
    now = time.time() if now is None else now
    supervisor = state["supervisor"]
    listener = state.get("listener") or {}
    held = lock_held(lock_file) if lock_file is not None else None
    stopped = supervisor.get("state") == "stopped" and not held  # the supervisor's last write on its way out
    running = not stopped and (held if held is not None else process_alive(supervisor.get("pid")))
    started = supervisor.get("started")
    if stopped:
        head = "edgesense is not running (it stopped); last known state:"
    elif running:
        phase = supervisor.get("state")
        head = (f"edgesense is {phase if phase in PHASES else 'running'}: "
                f"supervisor pid {supervisor.get('pid')}, "
                f"up {_duration(now - started) if _is_number(started) else '?'}; "
                f"log listener {_listener(listener)}, "
                f"restarted {listener.get('restarts', 0)} times"
                + _written_ago(supervisor.get("updated"), now))
    else:
        head = (f"edgesense is not running (supervisor pid {supervisor.get('pid')} is gone); "
                "last known state:")
    return [head] + _sensor_table(state.get("sensors") or [], now), running


def _listener(listener):
    """``pid 815 (running)``, or ``backoff, no pid``: the same words as a sensor's state."""
    pid, state = listener.get("pid", "?"), listener.get("state")
    if state is None:
        return f"pid {pid}"
    return f"pid {pid} ({state})" if pid is not None else f"{state}, no pid"


def _written_ago(updated, now):
    """The supervisor refreshes the readings in the file now and then: say
    how old the file is."""
    return f" (state written {_duration(now - updated)} ago)" if _is_number(updated) else ""


def _sensor_table(sensors, now):
    header = ("SENSOR", "TYPE", "STATE", "PID", "RESTARTS", "LAST EXIT", "LAST READING", "NEXT RETRY")
    rows = [header] + [_sensor_row(sensor, now) for sensor in sensors if isinstance(sensor, dict)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def _sensor_row(sensor, now):
    return (
        str(sensor.get("name", "?")),
        str(sensor.get("type", "?")),
        str(sensor.get("state", "?")),
        _or_dash(sensor.get("pid")),
        str(sensor.get("restarts", 0)),
        _or_dash(sensor.get("last_exit")),
        _last_reading(sensor.get("last_reading"), now),
        _next_retry(sensor.get("next_retry"), now),
    )


def _last_reading(reading, now):
    if not isinstance(reading, dict):
        return "-"
    value = reading.get("value")
    text = f"{value:g}" if _is_number(value) else str(value)
    stamp = reading.get("ts")
    return f"{text} ({_duration(now - stamp)} ago)" if _is_number(stamp) else text


def _next_retry(stamp, now):
    if not _is_number(stamp):
        return "-"
    return f"in {_duration(stamp - now)}" if stamp > now else "now"


def _or_dash(value):
    return "-" if value is None else str(value)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _duration(seconds):
    """3 s, 4 min 05 s, 2 h 03 min, 3 d 04 h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"

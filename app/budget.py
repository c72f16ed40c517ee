"""What the log folder's budget keeps, for ``edgesense check``.

The budget holds both live files (``edgesense.log`` and ``readings.jsonl``,
each up to ``max_file_bytes``), the room reserved for a state file kept in
the folder, and rotated copies, oldest deleted first. A rotated copy is
``max_file_bytes`` until it is compressed, and compressing it first needs
room for the archive beside it (``gzip_bound``); a budget without room for
one rotated copy of each live file keeps no history at all.

How long the history lasts is estimated from each sensor's interval and the
lines one reading writes (its ``readings.jsonl`` line and its
``reading sensor=...`` record), both made the way the service makes them,
and, with ``compress``, from how well such lines gzip.
"""

import gzip
import os

from app.readings import reading_message, reading_record
from logging_setup.directory import GZIP_LEVEL, gzip_bound
from logging_setup.formats import reading_line
from sensors.base import Reading

LIVE_FILES = 2
SAMPLE_READINGS = 400
# The record's head before its message: time, process name, logger, level.
RECORD_HEAD = "2026-01-01 00:00:00,000 {process:<10} {logger} INFO     "


def budget_warnings(settings, sensors):
    """Lines on a budget the file system cannot hold or that keeps no
    history; else one line on how long the history lasts."""
    lines = []
    size = _file_system_size(settings.dir)
    if size is not None and settings.max_total_bytes > size:
        lines.append(f"warning: logging.max_total_bytes ({_size(settings.max_total_bytes)}) is more than "
                     f"the whole file system of {settings.dir} ({_size(size)}): the card fills up first")
    needed = minimum_for_history(settings)
    if settings.max_total_bytes < needed:
        lines.append(f"warning: logging.max_total_bytes ({_size(settings.max_total_bytes)}) holds the live "
                     "edgesense.log and readings.jsonl but not one rotated copy of each (that takes "
                     f"{_size(needed)}): every rotation deletes the history")
    elif sensors:
        lines.append(f"history: about {_duration(history_seconds(settings, sensors))} of readings "
                     f"at the configured intervals ({_rate(sensors)})")
    return lines


def minimum_for_history(settings):
    """The smallest budget that keeps one rotated copy of each live file."""
    file_bytes = settings.max_file_bytes
    rotated = file_bytes + gzip_bound(file_bytes) if settings.compress else LIVE_FILES * file_bytes
    return settings.reserved_bytes + LIVE_FILES * file_bytes + rotated


def history_seconds(settings, sensors):
    """How many seconds of readings the rotated files hold when the live
    files are full."""
    lines = _sample_lines(sensors)
    written = len(lines.encode())
    stored = len(gzip.compress(lines.encode(), GZIP_LEVEL)) if settings.compress else written
    room = settings.max_total_bytes - settings.reserved_bytes - LIVE_FILES * settings.max_file_bytes
    if settings.compress:
        room -= gzip_bound(settings.max_file_bytes)
    seconds_of_sample = SAMPLE_READINGS / sum(1 / sensor.interval for sensor in sensors)
    return max(room, 0) / stored * seconds_of_sample


def _sample_lines(sensors):
    """The lines of SAMPLE_READINGS readings, the sensors taking turns at
    their rates, with values that change as measurements do."""
    lines = []
    clock = {sensor.name: 0.0 for sensor in sensors}
    for count in range(SAMPLE_READINGS):
        sensor = min(sensors, key=lambda item: clock[item.name] + item.interval)
        clock[sensor.name] += sensor.interval
        reading = Reading(round(20 + (count * 7919 % 1000) / 97, 2), "")
        head = RECORD_HEAD.format(process=f"sensor:{sensor.name}", logger=f"sensor.{sensor.name}")
        lines.append(head + reading_message(sensor.name, reading) + "\n")
        lines.append(reading_line(reading_record(sensor, reading, 1.8e9 + clock[sensor.name])))
    return "".join(lines)


def _file_system_size(directory):
    probe = directory
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        status = os.statvfs(probe)
    except OSError:
        return None
    return status.f_blocks * status.f_frsize


def _rate(sensors):
    per_minute = sum(60 / sensor.interval for sensor in sensors)
    return f"{per_minute:.3g} readings a minute"


def _duration(seconds):
    for unit, length in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * length:
            return f"{seconds / length:.0f} {unit}"
    return f"{seconds:.0f} seconds"


def _size(size):
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} bytes"

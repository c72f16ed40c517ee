"""A reading as the worker logs it: the text of its log line and the
record that the listener writes to ``readings.jsonl``."""

import datetime
import json


def format_value(value):
    """A reading's value as it appears in the log line: integers as they
    are, other numbers with up to 6 significant digits.

    >>> format_value(3), format_value(21.456789), format_value(0.1 + 0.2)
    ('3', '21.4568', '0.3')
    """
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


def reading_message(name, reading):
    """The greppable text of a reading (README, Sensors):
    ``reading sensor=<name> value=<value> unit=<unit> [<key>=<value> ...]``,
    with ``-`` for an empty unit.

    >>> from sensors.base import Reading
    >>> reading_message("door", Reading(1, "", {"activations": 3}))
    'reading sensor=door value=1 unit=- activations=3'
    >>> reading_message("cpu", Reading(48.3, "C", {"label": "core 0"}))
    'reading sensor=cpu value=48.3 unit=C label="core 0"'
    """
    fields = [f"sensor={name}", f"value={format_value(reading.value)}",
              f"unit={reading.unit or '-'}"]
    fields += [f"{key}={_format_field(value)}"
               for key, value in reading.extra.items()]
    return "reading " + " ".join(fields)


def reading_record(config, reading, epoch_seconds):
    """The reading as one ``readings.jsonl`` record: time, sensor, type,
    value and unit, then the reading's extra fields (which cannot replace
    those five)."""
    record = {"ts": iso_timestamp(epoch_seconds), "sensor": config.name,
              "type": config.type, "value": reading.value, "unit": reading.unit}
    for key, value in reading.extra.items():
        record.setdefault(key, value)
    return record


def iso_timestamp(epoch_seconds):
    """ISO 8601 local time with its UTC offset, to the millisecond."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds).astimezone()
    return moment.isoformat(timespec="milliseconds")

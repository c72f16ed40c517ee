"""The Sensor interface and the Reading it returns."""

import abc
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, ClassVar, Mapping

from sensors.problems import not_allowed, out_of_range, range_words

Problem = tuple[str, str]
"""A problem with one option: ``(key, message)``."""


@dataclass(frozen=True)
class Reading:
    """One reading: a number in a unit, plus type-specific extra fields
    (such as ``activations``) that land in readings.jsonl beside it."""

    value: float
    unit: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


class BadReading(ValueError):
    """What a ``read()`` returned is not a reading: the worker counts it as
    a failed read and says what came back, without a traceback (the fault
    is in the sensor's type, not where ``as_reading`` found it)."""


def as_reading(result, unit=""):
    """The Reading for what a ``read()`` returned: a Reading or a plain number.

    The value becomes a plain int or float (a bool becomes 0 or 1). A value
    that is not a finite number (None, NaN, infinity: what many drivers
    return for a failed read) raises BadReading, a ValueError.

    >>> as_reading(True)
    Reading(value=1, unit='', extra={})
    >>> as_reading(None)
    Traceback (most recent call last):
    ...
    sensors.base.BadReading: returned None, not a finite number or a Reading
    """
    reading = result if isinstance(result, Reading) else Reading(result, unit)
    value = reading.value
    if not isinstance(value, Real) or not math.isfinite(value):
        if reading is result:
            raise BadReading(f"returned a Reading whose value is {value!r}, not a finite number")
        raise BadReading(f"returned {value!r}, not a finite number or a Reading")
    # Plain int or float (not bool, not numpy's types), so the value prints
    # and serialises the same whatever the driver returned.
    plain = int(value) if isinstance(value, Integral) else float(value)
    if type(plain) is type(value):
        return reading
    return Reading(plain, reading.unit, reading.extra)


class Sensor(abc.ABC):
    """A sensor type: built from its config section's type-specific keys as
    keyword arguments, read on a schedule inside its own process.

    The keys a type accepts, which are required and their types come from
    its constructor's signature and annotations; ``option_problems`` adds
    the checks a signature cannot express (ranges, choices). Types that use
    GPIO take ``pin_factory=`` and name their pin keys in ``pin_options``.
    """

    pin_options: ClassVar[tuple[str, ...]] = ()
    """Option keys that name GPIO pins (for detecting two sensors on one pin)."""

    uses_gpio: ClassVar[bool] = True
    """False for types that never open a pin: their process then opens no
    pin factory."""

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[Problem]:
        """Problems the signature cannot express. ``options`` holds only keys
        that are known and of the right type."""
        return []

    @property
    def log_name(self) -> str:
        """The logger a reading goes through: the module defining the type."""
        return type(self).__module__

    @abc.abstractmethod
    def read(self) -> Reading:
        """Read the device once."""

    def close(self) -> None:
        """Release the device (its pins). Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class DeviceSensor(Sensor):
    """A Sensor that owns one gpiozero device, released by ``close()``."""

    def __init__(self, device):
        self._device = device

    @property
    def device(self):
        """The gpiozero device (raises once the sensor is closed)."""
        if self._device is None:
            raise RuntimeError(f"{type(self).__name__} is closed")
        return self._device

    def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            device.close()


def at_least(options, key, low, *, inclusive=True) -> list[Problem]:
    """A problem if ``options[key]`` is present and below ``low``, in the
    words config checks use.

    >>> at_least({"period": -1}, "period", 0, inclusive=False)
    [('period', '-1 is out of range; expected a number > 0')]
    """
    value = options.get(key)
    if value is None or value > low or (inclusive and value == low):
        return []
    return [(key, out_of_range(value, range_words("a number", low, low_inclusive=inclusive)))]


def between(options, key, low, high) -> list[Problem]:
    """A problem if ``options[key]`` is present and outside ``low..high``.

    >>> between({"channel": 4}, "channel", 0, 3)
    [('channel', '4 is out of range; expected a number >= 0 and <= 3')]
    """
    value = options.get(key)
    if value is None or low <= value <= high:
        return []
    return [(key, out_of_range(value, range_words("a number", low, high)))]


def one_of(options, key, choices) -> list[Problem]:
    """A problem if ``options[key]`` is present and not one of ``choices``.

    >>> one_of({"chip": "MCP3800"}, "chip", ("MCP3008", "MCP3004"))
    [('chip', '"MCP3800" is not allowed; expected one of MCP3008, MCP3004; did you mean MCP3008?')]
    """
    value = options.get(key)
    if value is None or value in choices:
        return []
    return [(key, not_allowed(value, choices))]

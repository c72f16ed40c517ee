"""Sensor types by name: built-in names and ``package.module:Class`` paths."""


class SensorTypeError(Exception):
    """An unknown type name, or a custom type that cannot be imported."""


def resolve(type_name):
    """The class for a built-in type name or a ``package.module:Class`` path."""
    raise NotImplementedError


def check_options(type_name, options):
    """Problems with a section's type-specific keys, as ``(key, message)``
    pairs: unknown keys, missing required ones, wrong types and ranges."""
    raise NotImplementedError


def pins_of(type_name, options):
    """The GPIO pins a section uses, for conflict detection."""
    raise NotImplementedError


def build(type_name, options, pin_factory=None):
    """Build the sensor from its type-specific keys."""
    raise NotImplementedError

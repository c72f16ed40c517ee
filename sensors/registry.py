"""Sensor types by name: built-in names and ``package.module:Class`` paths.

A type's options are its constructor's keyword arguments: the names it
accepts, which are required (no default) and their types (annotations) all
come from the signature, for built-in and custom types alike, so
``check_options`` can report every problem of a config section before any
process starts.
"""

import functools
import importlib
import inspect
import types
import typing

from sensors.base import Reading, Sensor, as_reading
from sensors.problems import did_you_mean, render, unknown_key, wrong_type

BUILTIN_TYPES = {
    "button": "sensors.digital:ButtonInput",
    "motion": "sensors.digital:MotionInput",
    "line": "sensors.digital:LineInput",
    "digital_input": "sensors.digital:DigitalInput",
    "distance": "sensors.distance:Distance",
    "light": "sensors.light:Light",
    "analog": "sensors.analog:AnalogChannel",
    "cpu_temperature": "sensors.system:CpuTemperature",
    "load_average": "sensors.system:LoadAverage",
    "disk_usage": "sensors.system:DiskUsage",
}

PIN_FACTORY = "pin_factory"


class SensorTypeError(Exception):
    """An unknown type name, or a custom type that cannot be imported."""


def resolve(type_name):
    """The class for a built-in type name or a ``package.module:Class`` path.

    Raises SensorTypeError with a one-line reason (unknown name with a
    suggestion, module that fails to import, no such class, no ``read()``).
    """
    if not isinstance(type_name, str):
        raise SensorTypeError(wrong_type(type_name, "a string"))
    if type_name in BUILTIN_TYPES:
        return _import_class(BUILTIN_TYPES[type_name])
    if ":" in type_name:
        return _import_class(type_name)
    raise SensorTypeError(
        f"unknown sensor type {render(type_name)}{did_you_mean(type_name, BUILTIN_TYPES)}"
        f" (built-in types: {', '.join(BUILTIN_TYPES)}; a custom type is"
        ' "package.module:Class")')


def _import_class(path):
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise SensorTypeError(
            f'custom sensor type {render(path)} must look like "package.module:Class"')
    try:
        found = importlib.import_module(module_name)
    except Exception as exc:
        raise SensorTypeError(
            f"cannot import module {render(module_name)} for sensor type {render(path)}:"
            f" {type(exc).__name__}: {exc}") from exc
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise SensorTypeError(
                f"module {render(module_name)} has no {render(qualname)} (sensor type {render(path)})")
    if not isinstance(found, type):
        raise SensorTypeError(f"sensor type {render(path)} is not a class")
    if not callable(getattr(found, "read", None)):
        raise SensorTypeError(f"sensor type {render(path)} has no read() method")
    return found


class _OptionSpec(typing.NamedTuple):
    """What a type's constructor accepts."""

    names: dict[str, typing.Any]  # option name -> annotation (or None)
    required: tuple[str, ...]
    any_name: bool                # the constructor takes **kwargs
    takes_pin_factory: bool


@functools.cache
def _option_spec(cls):
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return _OptionSpec({}, (), True, False)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        hints = {}
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                     inspect.Parameter.KEYWORD_ONLY)
    names, required = {}, []
    for parameter in parameters:
        if parameter.kind not in keyword_kinds or parameter.name == PIN_FACTORY:
            continue
        names[parameter.name] = hints.get(parameter.name)
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
    any_name = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    takes_pin_factory = any(p.name == PIN_FACTORY and p.kind in keyword_kinds
                            for p in parameters)
    return _OptionSpec(names, tuple(required), any_name, takes_pin_factory)


def check_options(type_name, options, other_keys=()):
    """Problems with a section's type-specific keys, as ``(key, message)``
    pairs: unknown keys, missing required ones, wrong types and ranges.
    An unknown key may be a misspelt one of ``other_keys`` (the section's
    common keys): the suggestion considers them too.

    An unknown or unimportable type is one problem under the key ``type``.
    Range checks (the type's ``option_problems``) see only the keys that are
    known and of the right type, so each key gets one clear message.
    """
    try:
        cls = resolve(type_name)
    except SensorTypeError as exc:
        return [("type", str(exc))]
    spec = _option_spec(cls)
    problems, valid = [], {}
    for key, value in options.items():
        if key not in spec.names and not spec.any_name:
            problems.append((key, unknown_key(key, list(spec.names), also=other_keys,
                                              label=f"keys of type {type_name}")))
            continue
        wrong = _type_problem(value, spec.names.get(key))
        if wrong:
            problems.append((key, wrong))
        else:
            valid[key] = value
    for key in spec.required:
        if key not in options:
            problems.append((key, f"missing; type {type_name} requires it"))
    option_problems = getattr(cls, "option_problems", None)
    if callable(option_problems):
        problems.extend(option_problems(valid))
    return problems


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number",
               str: "a string"}


def _type_problem(value, annotation):
    """A message if ``value`` does not fit ``annotation``; None if it does
    or if the annotation is not one this check understands."""
    allowed = _plain_types(annotation)
    if not allowed:
        return None
    if any(_fits(value, kind) for kind in allowed):
        return None
    return wrong_type(value, " or ".join(_TYPE_WORDS[kind] for kind in allowed))


def _plain_types(annotation):
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    else:
        members = [annotation]
    if all(member in _TYPE_WORDS for member in members):
        return members
    return []


def _fits(value, kind):
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def uses_gpio(cls):
    """Whether building ``cls`` needs a pin factory: it accepts one and does
    not declare ``uses_gpio = False``."""
    return _option_spec(cls).takes_pin_factory and getattr(cls, "uses_gpio", True)


def build(type_name, options, pin_factory=None):
    """Build the sensor from its type-specific keys.

    Returns a Sensor; a custom class that is not one is wrapped, so its
    ``read()`` may return a plain number and ``close()`` may be missing.
    ``pin_factory`` is passed only to types whose constructor accepts it.
    """
    cls = resolve(type_name)
    kwargs = dict(options)
    if _option_spec(cls).takes_pin_factory:
        kwargs[PIN_FACTORY] = pin_factory
    sensor = cls(**kwargs)
    return sensor if isinstance(sensor, Sensor) else CustomSensor(sensor)


class CustomSensor(Sensor):
    """A custom type that does not subclass Sensor, made into one."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self._closed = False

    @property
    def log_name(self):
        return type(self.wrapped).__module__

    def read(self) -> Reading:
        return as_reading(self.wrapped.read())

    def close(self):
        if self._closed:
            return
        self._closed = True
        close = getattr(self.wrapped, "close", None)
        if callable(close):
            close()

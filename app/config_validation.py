"""Validating a parsed config: every problem found, one line each, in the
form ``<source>: <key path>: <what is wrong>``. Nothing is created: the
folder checks (``app.paths``) judge a missing folder by its nearest
existing ancestor."""

from dataclasses import dataclass
from pathlib import Path

from app.config_schema import (REQUIRED_SENSOR_KEYS, SECTIONS, SENSOR_KEYS, SENSOR_NAME,
                               STATE_FILE_NAME, Config, ConfigError, GpioSettings, SensorConfig,
                               SupervisorSettings)
from app.mqtt_settings import mqtt_problems, mqtt_settings
from app.paths import check_state_file, check_writable
from app.statefile import with_room_for_state_file
from logging_setup import LogSettings
from sensors import registry
from sensors.pins import is_gpio_pin, pin_problem, pins_of
from sensors.problems import describe, did_you_mean, render, unknown_key

class _Problems:
    """Collects ``<source>: <key path>: <message>`` lines."""

    def __init__(self, source):
        self.source = source
        self.lines = []

    def add(self, key_path, message):
        self.lines.append(f"{self.source}: {key_path}: {message}")


@dataclass(frozen=True)
class ServicePaths:
    """Where a running service keeps its log folder and its state file."""

    log_dir: Path
    state_file: Path


def paths_from_dict(data, *, base_dir, source):
    """``load_paths`` for parsed TOML ``data``."""
    problems = _Problems(source)
    log_dir = _section(data, "logging", problems, only=("dir",))["dir"]
    state_file = _section(data, "supervisor", problems, only=("state_file",))["state_file"]
    if problems.lines:
        raise ConfigError(problems.lines)
    log_dir = _resolve_path(log_dir, base_dir)
    state_file = log_dir / STATE_FILE_NAME if state_file is None else _resolve_path(state_file, base_dir)
    return ServicePaths(log_dir, state_file)


def config_from_dict(data, *, path, base_dir, source, check_paths=True, service_user=None):
    """Validate parsed TOML ``data``; relative paths resolve against
    ``base_dir``; messages start with ``source``."""
    problems = _Problems(source)
    for section in data:
        if section not in SECTIONS:
            problems.add(section, "unknown section" + did_you_mean(section, list(SECTIONS))
                         + f" (allowed: {', '.join(SECTIONS)})")
    log_settings = _log_settings(_section(data, "logging", problems), base_dir, problems)
    supervisor_values = _section(data, "supervisor", problems)
    supervisor = _supervisor_settings(supervisor_values, base_dir, log_settings, problems)
    log_settings = with_room_for_state_file(log_settings, supervisor.state_file)
    gpio = GpioSettings(**_section(data, "gpio", problems))
    sensors = _sensors(data.get("sensor"), problems)
    mqtt = _mqtt_settings(data, base_dir, problems) if "mqtt" in data else None
    if check_paths:
        check_writable(log_settings.dir, "logging.dir", problems, service_user)
        if supervisor_values["state_file"] is not None:
            check_state_file(supervisor.state_file, problems, service_user)
    if problems.lines:
        raise ConfigError(problems.lines)
    return Config(path=path, logging=log_settings, supervisor=supervisor, gpio=gpio,
                  sensors=tuple(sensors), mqtt=mqtt)


def _section(data, name, problems, only=None):
    """The valid keys of a table section, with defaults filled in; with
    ``only``, just those keys (the others are not looked at)."""
    keys = SECTIONS[name] if only is None else tuple(key for key in SECTIONS[name] if key.name in only)
    values = {key.name: key.default for key in keys}
    table = data.get(name, {})
    if not isinstance(table, dict):
        problems.add(name, f"{render(table)} is {describe(table)}; expected a table [{name}]")
        return values
    values.update(_check_keys(table, keys, name, problems, unknown_ok=only is not None))
    return values


def _check_keys(table, keys, key_path, problems, *, unknown_ok=False):
    """The keys of ``table`` that are valid; a problem for every other one."""
    by_name = {key.name: key for key in keys}
    valid = {}
    for name, value in table.items():
        key = by_name.get(name)
        if key is None:
            if not unknown_ok:
                problems.add(f"{key_path}.{name}", unknown_key(name, list(by_name)))
            continue
        problem = key.problem(value)
        if problem:
            problems.add(f"{key_path}.{name}", problem)
        else:
            valid[name] = key.clean(value)
    return valid


def _resolve_path(text, base_dir):
    return (Path(base_dir) / Path(text).expanduser()).absolute()


def _log_settings(values, base_dir, problems):
    if values["max_total_bytes"] < 2 * values["max_file_bytes"]:
        problems.add("logging.max_total_bytes",
                     f"{values['max_total_bytes']} is less than 2 x max_file_bytes "
                     f"({2 * values['max_file_bytes']}); the budget must hold the live "
                     "edgesense.log and readings.jsonl")
    values = dict(values, dir=_resolve_path(values["dir"], base_dir))
    return LogSettings(**values)


def _supervisor_settings(values, base_dir, log_settings, problems):
    if values["backoff_max"] < values["backoff_initial"]:
        problems.add("supervisor.backoff_max",
                     f"{values['backoff_max']!r} is less than backoff_initial "
                     f"({values['backoff_initial']!r})")
    if values["state_file"] is None:
        state_file = log_settings.dir / STATE_FILE_NAME
    else:
        state_file = _resolve_path(values["state_file"], base_dir)
    return SupervisorSettings(**dict(values, state_file=state_file))


def _mqtt_settings(data, base_dir, problems):
    """The ``[mqtt]`` table's settings, or None after adding its problems."""
    before = len(problems.lines)
    values = _section(data, "mqtt", problems)
    given = data["mqtt"] if isinstance(data["mqtt"], dict) else {}
    for key, message in mqtt_problems(values, given):
        problems.add(f"mqtt.{key}", message)
    return mqtt_settings(values, base_dir) if len(problems.lines) == before else None


def _sensors(sections, problems):
    if sections is None:
        problems.add("sensor", "no [[sensor]] section; add at least one (see `edgesense init`)")
        return []
    if not isinstance(sections, list) or not all(isinstance(item, dict) for item in sections):
        problems.add("sensor", f"{render(sections)} is {describe(sections)}; "
                               "expected [[sensor]] sections (an array of tables)")
        return []
    if not sections:
        problems.add("sensor", "no [[sensor]] section; add at least one (see `edgesense init`)")
    names = _unique_names(sections)
    sensors = []
    pin_owners = {}
    for index, table in enumerate(sections, start=1):
        key_path = f'sensor "{names[index]}"' if names.get(index) else f"sensor[{index}]"
        sensor = _sensor(table, key_path, pin_owners, problems)
        if sensor is not None:
            sensors.append(sensor)
    _check_duplicate_names(sections, problems)
    return sensors


def _unique_names(sections):
    """Index -> name for sections whose name is valid and used once, so that
    messages can say ``sensor "door"`` instead of ``sensor[2]``."""
    counts = {}
    for table in sections:
        name = table.get("name")
        if isinstance(name, str):
            counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    return {index: table["name"] for index, table in enumerate(sections, start=1)
            if isinstance(table.get("name"), str) and SENSOR_NAME.fullmatch(table["name"])
            and counts[table["name"].casefold()] == 1}


def _check_duplicate_names(sections, problems):
    """Names are unique ignoring case: they name log files, processes and
    greps, and "Door" and "door" are one name to a person."""
    first = {}
    for index, table in enumerate(sections, start=1):
        name = table.get("name")
        if not isinstance(name, str):
            continue
        if name.casefold() not in first:
            first[name.casefold()] = (index, name)
            continue
        first_index, first_name = first[name.casefold()]
        other = "" if first_name == name else f" ({render(first_name)})"
        problems.add(f"sensor[{index}].name",
                     f"{render(name)} is already the name of sensor[{first_index}]{other}; "
                     "names must be unique, ignoring case")


def _sensor(table, key_path, pin_owners, problems):
    """A SensorConfig, or None after adding its problems."""
    before = len(problems.lines)
    common = _check_keys(table, SENSOR_KEYS, key_path, problems, unknown_ok=True)
    options = {name: value for name, value in table.items()
               if name not in {key.name for key in SENSOR_KEYS}}
    for name in REQUIRED_SENSOR_KEYS:
        if name not in table:
            problems.add(f"{key_path}.{name}", f"missing; expected {_key(SENSOR_KEYS, name).allowed()}")
    name = common.get("name")
    if name is not None and not SENSOR_NAME.fullmatch(name):
        problems.add(f"{key_path}.name", f"{render(name)} is not allowed; expected 1 to 64 "
                                         "letters, digits, _ . - starting with a letter or digit")
    above, below = common.get("warn_above"), common.get("warn_below")
    if above is not None and below is not None and below >= above:
        problems.add(f"{key_path}.warn_below",
                     f"{render(below)} is not below warn_above ({render(above)})")
    type_name = common.get("type")
    if type_name is None or not _check_type(type_name, key_path, problems):
        _check_misspelt_common_keys(options, key_path, problems)
    elif _check_options(type_name, options, key_path, problems):
        _check_pins(type_name, options, key_path, pin_owners, problems)
    if len(problems.lines) > before:
        return None
    return SensorConfig(options=options, **common)


def _key(keys, name):
    return next(key for key in keys if key.name == name)


def _check_type(type_name, key_path, problems):
    """Whether the sensor type exists (or imports); a problem if not."""
    try:
        registry.resolve(type_name)
    except registry.SensorTypeError as error:
        problems.add(f"{key_path}.type", str(error))
        return False
    except Exception as error:  # a custom type's module may raise anything on import
        problems.add(f"{key_path}.type", f"cannot import {render(type_name)}: "
                                         f"{type(error).__name__}: {error}")
        return False
    return True


def _check_options(type_name, options, key_path, problems):
    """Whether the type accepts ``options``; a problem for each thing wrong."""
    common = [key.name for key in SENSOR_KEYS]
    option_problems = registry.check_options(type_name, options, other_keys=common)
    for option, message in option_problems:
        problems.add(f"{key_path}.{option}", message)
    return not option_problems


def _check_misspelt_common_keys(options, key_path, problems):
    """Without a usable type its keys cannot be checked, but a key that
    looks like a misspelt common key (``tpye``, ``intreval``) is one."""
    common = [key.name for key in SENSOR_KEYS]
    for option in options:
        hint = did_you_mean(option, common)
        if hint:
            problems.add(f"{key_path}.{option}", "unknown key" + hint)


def _check_pins(type_name, options, key_path, pin_owners, problems):
    """Two sensors on one pin: the later one gets the message. ``pins_of``
    gives gpiozero's name of each pin, so 17 and "BOARD11" are one pin."""
    for key, value in options.items():
        pins = pins_of(type_name, {key: value})
        if pins and not is_gpio_pin(value):
            problems.add(f"{key_path}.{key}", pin_problem(value))
            continue
        for pin in pins:
            first = pin_owners.setdefault(pin, key_path)
            if first != key_path:
                problems.add(f"{key_path}.{key}",
                             f"{render(value)} is already used by {first} (as {pin}); "
                             "two sensors cannot share a pin")

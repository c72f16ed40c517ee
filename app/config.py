"""The configuration file (TOML): defaults, validation, lookup.

``load_config(path)`` reads a file and returns a ``Config`` or raises
``ConfigError`` with every problem found, one line each, in the form
``<file>: <key path>: <what is wrong>``. Validation never creates anything
(the folder checks are in ``app.paths``).
"""

import math
import os
import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from app.statefile import with_room_for_state_file
from logging_setup import LogSettings
from app.paths import check_state_file, check_writable
from sensors import registry
from sensors.problems import describe, did_you_mean, render

START_METHODS = ("fork", "forkserver", "spawn")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native", "mock")
DEFAULT_LOG_DIR = "edgesense-logs"
STATE_FILE_NAME = "edgesense.state.json"
SENSOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BYTE_ORDER_MARK = "\ufeff"
DAY = 86400
WEEK = 7 * DAY
GIB = 1 << 30
SEARCH_PATHS = ("./edgesense.toml", "/etc/edgesense/config.toml")
"""Where ``find_config`` looks after ``$EDGESENSE_CONFIG``, in order."""


@dataclass(frozen=True)
class SensorConfig:
    """One ``[[sensor]]`` section. ``options`` holds the type-specific keys."""

    name: str
    type: str
    interval: float
    options: Mapping[str, Any] = field(default_factory=dict)
    read_timeout: float = 10.0
    max_failures: int = 5
    warn_above: float | None = None
    warn_below: float | None = None


@dataclass(frozen=True)
class SupervisorSettings:
    """The ``[supervisor]`` section. Times in seconds."""

    start_method: str = "forkserver"
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    stable_after: float = 60.0
    max_restarts: int = 5
    restart_window: float = 60.0
    failed_cooldown: float = 300.0
    stop_timeout: float = 5.0
    state_file: Path | None = None


@dataclass(frozen=True)
class GpioSettings:
    """The ``[gpio]`` section."""

    pin_factory: str | None = None


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``path`` is None for one built in code
    (the demo)."""

    path: Path | None
    logging: LogSettings
    supervisor: SupervisorSettings
    gpio: GpioSettings
    sensors: tuple[SensorConfig, ...]


class ConfigError(Exception):
    """Every problem found in a config file, one line each."""

    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


# --- The schema: every key, its type, default, allowed range and meaning ---


@dataclass(frozen=True)
class Kind:
    """A value type: ``accepts`` says whether a TOML value has the type,
    ``expected`` says in words what is allowed."""

    accepts: Callable[[Any], bool]
    expected: str


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


INTEGER = Kind(_is_int, "an integer")
NUMBER = Kind(_is_number, "a number")
BOOLEAN = Kind(lambda value: isinstance(value, bool), "true or false")
STRING = Kind(lambda value: isinstance(value, str), "a string")


@dataclass(frozen=True)
class Key:
    """One key of a section."""

    name: str
    kind: Kind
    default: Any
    meaning: str
    minimum: float | None = None
    minimum_inclusive: bool = True
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""

    def allowed(self):
        """What is allowed, in words, for error messages."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        words = self.kind.expected
        if self.minimum is not None:
            words += f" {'>=' if self.minimum_inclusive else '>'} {self.minimum:g}"
        if self.maximum is not None:
            words += f"{' and' if self.minimum is not None else ''} <= {self.maximum}"
        if self.unit:
            words += f" ({self.unit})"
        return words

    def problem(self, value):
        """Why ``value`` is not allowed, or None."""
        if not self.kind.accepts(value):
            return f"{render(value)} is {describe(value)}; expected {self.allowed()}"
        if self.kind is NUMBER and not _is_finite(value):
            return f"{render(value)} is not a finite number; expected {self.allowed()}"
        if self.choices and _normalize_choice(self, value) not in self.choices:
            hint = did_you_mean(str(value), self.choices)
            return f"{render(value)} is not allowed; expected {self.allowed()}{hint}"
        if self.minimum is not None:
            too_small = value < self.minimum if self.minimum_inclusive else value <= self.minimum
            if too_small:
                return f"{render(value)} is out of range; expected {self.allowed()}"
        if self.maximum is not None and value > self.maximum:
            return f"{render(value)} is out of range; expected {self.allowed()}"
        if self.kind is STRING and not value.strip():
            return f"{render(value)} is empty; expected {self.allowed()}"
        if self.kind is STRING and "\0" in value:
            return f"{render(value)} contains a NUL character (\\u0000); remove it"
        return None


def _is_finite(number):
    """Not nan or inf, and an integer that fits a float (a reading is
    compared with it and it is printed as a float)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _normalize_choice(key, value):
    return value.upper() if key.name == "level" else value.lower()


def _default(cls, name):
    for item in fields(cls):
        if item.name == name:
            return item.default if item.default is not MISSING else None
    raise KeyError(name)


def _seconds(cls, name, meaning, maximum=DAY):
    """A time in seconds: more than 0, at most ``maximum`` (a day unless
    said otherwise), so that every timer the service sets is one it can set."""
    return Key(name, NUMBER, _default(cls, name), meaning, 0, False, maximum, unit="seconds")


LOGGING_KEYS = (
    Key("dir", STRING, DEFAULT_LOG_DIR,
        "Folder of the log files (`edgesense.log`, `readings.jsonl` and their rotated copies)."),
    Key("level", STRING, _default(LogSettings, "level"),
        "Lowest level written to the log files and the console.", choices=LEVELS),
    Key("max_file_bytes", INTEGER, _default(LogSettings, "max_file_bytes"),
        "Size at which a log file is rotated.", 4096, maximum=GIB, unit="bytes"),
    Key("max_total_bytes", INTEGER, _default(LogSettings, "max_total_bytes"),
        "Storage budget of the log folder, live and rotated files together; "
        "at least 2 x max_file_bytes (the live `edgesense.log` and `readings.jsonl`).", 8192,
        maximum=1024 * GIB, unit="bytes"),
    Key("compress", BOOLEAN, _default(LogSettings, "compress"), "Gzip rotated files."),
    Key("console", BOOLEAN, _default(LogSettings, "console"),
        "Also print every record on stderr (the journal under systemd)."),
)

SUPERVISOR_KEYS = (
    Key("start_method", STRING, _default(SupervisorSettings, "start_method"),
        "How sensor processes are started.", choices=START_METHODS),
    _seconds(SupervisorSettings, "backoff_initial", "First delay before restarting a sensor that stopped."),
    _seconds(SupervisorSettings, "backoff_max", "Longest delay between restarts (the delay doubles up to this)."),
    _seconds(SupervisorSettings, "stable_after",
             "A sensor that ran this long gets its restart delay reset to backoff_initial."),
    Key("max_restarts", INTEGER, _default(SupervisorSettings, "max_restarts"),
        "More restarts than this within restart_window mark the sensor failed.", 1),
    _seconds(SupervisorSettings, "restart_window", "The window in which max_restarts counts.", WEEK),
    _seconds(SupervisorSettings, "failed_cooldown",
             "How long a failed sensor rests before it is tried again.", WEEK),
    _seconds(SupervisorSettings, "stop_timeout",
             "How long a sensor may take to stop before it is killed."),
    Key("state_file", STRING, None,
        f"The state file read by `edgesense status`; unset: `{STATE_FILE_NAME}` in the log folder."),
)

GPIO_KEYS = (
    Key("pin_factory", STRING, None,
        "gpiozero pin factory of every sensor; unset: `$GPIOZERO_PIN_FACTORY`, "
        "else gpiozero's default.", choices=PIN_FACTORIES),
)

SENSOR_KEYS = (
    Key("name", STRING, None,
        "Unique name, 1 to 64 letters, digits, `_`, `.`, `-`; its process is `sensor:NAME`."),
    Key("type", STRING, None,
        "A built-in sensor type, or a custom one as `package.module:Class`."),
    _seconds(SensorConfig, "interval", "Time between the starts of two readings."),
    _seconds(SensorConfig, "read_timeout",
             "A read that has not returned after this long is a hung sensor: it is restarted."),
    Key("max_failures", INTEGER, _default(SensorConfig, "max_failures"),
        "Failed reads in a row that end the sensor's process (then it is restarted).", 1),
    Key("warn_above", NUMBER, None, "Log a WARNING when a reading is above this value."),
    Key("warn_below", NUMBER, None, "Log a WARNING when a reading is below this value."),
)

SECTIONS = {
    "logging": LOGGING_KEYS,
    "supervisor": SUPERVISOR_KEYS,
    "gpio": GPIO_KEYS,
    "sensor": SENSOR_KEYS,
}
"""Every section and its keys; ``sensor`` is an array of tables whose other
keys belong to the sensor type."""

REQUIRED_SENSOR_KEYS = ("name", "type", "interval")


# --- Reading the file ---


def read_toml(path):
    """The file's TOML content as a dict; ConfigError (one line) when it
    cannot be read, is not UTF-8 or is not valid TOML."""
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise ConfigError([f"{path}: not a regular file (a pipe or a device cannot be a config file)"])
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a config file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: cannot read: permission denied"]) from None
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_column(raw, error.start)
        raise ConfigError([
            f"{path}: line {line}, column {column}: not UTF-8 text "
            f"(byte 0x{raw[error.start]:02x}); save the file as UTF-8"
        ]) from None
    text = text.removeprefix(BYTE_ORDER_MARK)  # some Windows editors write one
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{path}: {_syntax_message(error)}"]) from None


def _line_column(raw, offset):
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def _syntax_message(error):
    """tomllib puts the position at the end of its message: move it first."""
    message = str(error)
    found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message)
    if found:
        return f"line {found[2]}, column {found[3]}: invalid TOML: {found[1]}"
    found = re.fullmatch(r"(.*) \(at end of document\)", message)
    if found:
        return f"at the end of the file: invalid TOML: {found[1]}"
    return f"invalid TOML: {message}"


# --- Validation ---


class _Problems:
    """Collects ``<source>: <key path>: <message>`` lines."""

    def __init__(self, source):
        self.source = source
        self.lines = []

    def add(self, key_path, message):
        self.lines.append(f"{self.source}: {key_path}: {message}")


def load_config(path, *, check_paths=True, service_user=None):
    """Read and validate a config file; raise ConfigError with all errors.

    Relative paths in the file resolve against the file's folder.
    ``check_paths=False`` skips the writability checks of the log folder and
    the state file, for commands that only read them (``status``, ``logs``);
    ``service_user`` (an ``app.paths.ServiceUser``) judges them for that user
    instead of this process.
    """
    data = read_toml(path)
    absolute = Path(path).absolute()
    return config_from_dict(data, path=absolute, base_dir=absolute.parent, source=str(path),
                            check_paths=check_paths, service_user=service_user)


@dataclass(frozen=True)
class ServicePaths:
    """Where a running service keeps its log folder and its state file."""

    log_dir: Path
    state_file: Path


def load_paths(path):
    """Only ``[logging] dir`` and ``[supervisor] state_file`` of a config
    file, for ``status`` and ``logs``: they work whatever else the file
    holds (a sensor section being edited, a custom type that imports only
    under the service's PYTHONPATH). Raise ConfigError (one line each) when
    the file is not TOML or those keys are wrong."""
    return paths_from_dict(read_toml(path), base_dir=Path(path).absolute().parent, source=str(path))


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
    if check_paths:
        check_writable(log_settings.dir, "logging.dir", problems, service_user)
        if supervisor_values["state_file"] is not None:
            check_state_file(supervisor.state_file, problems, service_user)
    if problems.lines:
        raise ConfigError(problems.lines)
    return Config(path=path, logging=log_settings, supervisor=supervisor, gpio=gpio,
                  sensors=tuple(sensors))


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
                problems.add(f"{key_path}.{name}", "unknown key" + did_you_mean(name, list(by_name))
                             + f" (allowed: {', '.join(by_name)})")
            continue
        problem = key.problem(value)
        if problem:
            problems.add(f"{key_path}.{name}", problem)
        else:
            valid[name] = _normalize_choice(key, value) if key.choices else value
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
    option_problems = registry.check_options(type_name, options)
    for option, message in option_problems:
        problems.add(f"{key_path}.{option}", message + _common_key_hint(option, message))
    return not option_problems


def _check_misspelt_common_keys(options, key_path, problems):
    """Without a usable type its keys cannot be checked, but a key that
    looks like a misspelt common key (``tpye``, ``intreval``) is one."""
    common = [key.name for key in SENSOR_KEYS]
    for option in options:
        hint = did_you_mean(option, common)
        if hint:
            problems.add(f"{key_path}.{option}", "unknown key" + hint)


def _common_key_hint(option, message):
    """A misspelt common key (``intervall``) reaches the type as an unknown
    key of its own: point at the common key."""
    if "unknown" not in message or "did you mean" in message:
        return ""
    return did_you_mean(option, [key.name for key in SENSOR_KEYS])


def _check_pins(type_name, options, key_path, pin_owners, problems):
    """Two sensors on one pin: the later one gets the message. ``pins_of``
    gives gpiozero's name of each pin, so 17 and "BOARD11" are one pin."""
    for key, value in options.items():
        pins = registry.pins_of(type_name, {key: value})
        if pins and not is_gpio_pin(value):
            problems.add(f"{key_path}.{key}", _pin_problem(value))
            continue
        for pin in pins:
            first = pin_owners.setdefault(pin, key_path)
            if first != key_path:
                problems.add(f"{key_path}.{key}",
                             f"{render(value)} is already used by {first} (as {pin}); "
                             "two sensors cannot share a pin")


BCM_PIN = re.compile(r"(?:GPIO|BCM)?(0|[1-9][0-9]?)")
HIGHEST_BCM_PIN = 53
"""The highest GPIO number of any Pi (the compute modules'); the 40-pin
header has GPIO0 to GPIO27, which is what the board tables know."""


def is_gpio_pin(value):
    """Whether gpiozero can take ``value`` as a GPIO pin: a BCM number 0-53
    (``17``, ``"17"``, ``"GPIO17"``, ``"BCM17"``) or a header name of a GPIO
    pin (``"BOARD11"``, ``"J8:11"``, ``"WPI0"``). Names are case-sensitive,
    as in gpiozero: ``"gpio17"`` is not a pin."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    if isinstance(value, int):
        return 0 <= value <= HIGHEST_BCM_PIN
    number = BCM_PIN.fullmatch(value)
    if number:
        return int(number[1]) <= HIGHEST_BCM_PIN
    canonical = registry.canonical_pin(value)
    return canonical != value and BCM_PIN.fullmatch(canonical) is not None


def _pin_problem(value):
    message = (f"{render(value)} is not a GPIO pin; expected a BCM number 0-{HIGHEST_BCM_PIN} "
               '(17, "GPIO17", "BCM17") or a header pin ("BOARD11", "J8:11")')
    if isinstance(value, str) and is_gpio_pin(value.strip().upper()):
        message += f"; did you mean {render(value.strip().upper())}?"
    return message


# --- Lookup ---


def find_config(environ=None, cwd=None):
    """The config file to use when none is given: ``$EDGESENSE_CONFIG``, then
    ``./edgesense.toml``, then ``/etc/edgesense/config.toml``; None when none
    exists (the caller runs the built-in demo). ``$EDGESENSE_CONFIG`` is
    returned even if it does not exist, so that a typo is reported."""
    environ = os.environ if environ is None else environ
    if environ.get("EDGESENSE_CONFIG"):
        return Path(environ["EDGESENSE_CONFIG"])
    cwd = Path.cwd() if cwd is None else Path(cwd)
    for candidate in SEARCH_PATHS:
        path = cwd / candidate
        if path.exists():
            return path
    return None

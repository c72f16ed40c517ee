"""What a config file holds: every section, every key with its type,
default, allowed range and meaning, and the settings they make.

README's Configuration reference and the example config are checked
against ``SECTIONS`` (tests/test_config_reference.py).
"""

import math
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from app.mqtt_wire import default_node
from logging_setup import LogSettings
from sensors.pins import factory_names
from sensors.problems import choice_words, not_allowed, out_of_range, range_words, render, wrong_type

START_METHODS = ("fork", "forkserver", "spawn")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_DIR = "edgesense-logs"
STATE_FILE_NAME = "edgesense.state.json"
SENSOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DAY = 86400
WEEK = 7 * DAY
GIB = 1 << 30


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
class MqttSettings:
    """The ``[mqtt]`` table: where the publisher sends readings. ``port`` is
    the one to use (1883, or 8883 with ``tls``, unless given)."""

    host: str
    port: int = 1883
    node: str = field(default_factory=default_node)
    topic_prefix: str = "edgesense"
    username: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    keepalive: int = 30
    discovery: bool = True
    discovery_prefix: str = "homeassistant"

    @property
    def broker(self):
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``path`` is None for one built in code
    (the demo). ``mqtt`` is None without an ``[mqtt]`` table: nothing is
    published."""

    path: Path | None
    logging: LogSettings
    supervisor: SupervisorSettings
    gpio: GpioSettings
    sensors: tuple[SensorConfig, ...]
    mqtt: MqttSettings | None = None


class ConfigError(Exception):
    """Every problem found in a config file, one line each."""

    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


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
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    """The allowed strings, or a function that finds them when asked (the
    pin factories installed)."""
    normalize: Callable[[str], str] = str.lower
    """How a choice is written before it is compared (levels are upper case)."""
    unit: str = ""

    def allowed_choices(self):
        return self.choices() if callable(self.choices) else self.choices

    def allowed(self):
        """What is allowed, in words, for error messages."""
        if self.choices:
            return choice_words(self.allowed_choices())
        return range_words(self.kind.expected, self.minimum, self.maximum,
                           low_inclusive=self.minimum_inclusive, unit=self.unit)

    def clean(self, value):
        """The value as the settings hold it: a choice normalized."""
        return self.normalize(value) if self.choices else value

    def problem(self, value):
        """Why ``value`` is not allowed, or None."""
        if not self.kind.accepts(value):
            return wrong_type(value, self.allowed())
        if self.kind is NUMBER and not _is_finite(value):
            return f"{render(value)} is not a finite number; expected {self.allowed()}"
        if self.choices and self.clean(value) not in self.allowed_choices():
            return not_allowed(value, self.allowed_choices())
        if self.minimum is not None:
            too_small = value < self.minimum if self.minimum_inclusive else value <= self.minimum
            if too_small:
                return out_of_range(value, self.allowed())
        if self.maximum is not None and value > self.maximum:
            return out_of_range(value, self.allowed())
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
        "Lowest level written to the log files and the console.", choices=LEVELS,
        normalize=str.upper),
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
        "else gpiozero's default.", choices=factory_names),
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

MQTT_KEYS = (
    Key("host", STRING, None, "The broker's host name or address."),
    Key("port", INTEGER, None, "The broker's port; unset: 1883, or 8883 with `tls`.", 1, maximum=65535),
    Key("node", STRING, None, "This board's name in topics and ids, 1 to 64 of `a-z`, `0-9`, `_`, `-`; "
                              "unset: the host name, reduced to those characters."),
    Key("topic_prefix", STRING, _default(MqttSettings, "topic_prefix"), "First level(s) of every topic."),
    Key("username", STRING, None, "User name at the broker; unset: none."),
    Key("password_file", STRING, None, "A file holding the password on its first line, readable by the "
                                       "service user only; a password is never written in the config."),
    Key("tls", BOOLEAN, _default(MqttSettings, "tls"), "TLS to the broker."),
    Key("ca_file", STRING, None, "With `tls`: the CA certificate(s) to trust; unset: the system's CAs."),
    Key("keepalive", INTEGER, _default(MqttSettings, "keepalive"),
        "Seconds between keepalive pings; a dead connection is noticed within 1.5 x this.",
        5, maximum=3600, unit="seconds"),
    Key("discovery", BOOLEAN, _default(MqttSettings, "discovery"), "Home Assistant MQTT discovery."),
    Key("discovery_prefix", STRING, _default(MqttSettings, "discovery_prefix"),
        "Home Assistant's discovery prefix."),
)

SECTIONS = {
    "logging": LOGGING_KEYS,
    "supervisor": SUPERVISOR_KEYS,
    "gpio": GPIO_KEYS,
    "sensor": SENSOR_KEYS,
    "mqtt": MQTT_KEYS,
}
"""Every section and its keys; ``sensor`` is an array of tables whose other
keys belong to the sensor type; ``mqtt`` is optional (publishing is on when
it is there)."""

REQUIRED_SENSOR_KEYS = ("name", "type", "interval")
REQUIRED_MQTT_KEYS = ("host",)

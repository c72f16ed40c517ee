"""The ``[mqtt]`` table: where the publisher sends readings. Publishing is on
when the table is there; without it nothing MQTT is imported."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from app.mqtt_wire import default_node

PLAIN_PORT = 1883
TLS_PORT = 8883
NODE_NAME = re.compile(r"[a-z0-9_-]{1,64}")
TOPIC_LEVELS = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
HOST_NAME = re.compile(r"[A-Za-z0-9._:-]{1,253}")


@dataclass(frozen=True)
class MqttSettings:
    """A validated ``[mqtt]`` table; ``port`` is the one to use (1883, or
    8883 with ``tls``, unless given)."""

    host: str
    port: int = PLAIN_PORT
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


MQTT_KEYS = (
    ("host", str, None, "The broker's host name or address (required)."),
    ("port", int, None, "The broker's port; unset: 1883, or 8883 with `tls`."),
    ("node", str, None, "This board's name in topics and ids, `[a-z0-9_-]`, 1 to 64; "
                        "unset: the host name, reduced to those characters."),
    ("topic_prefix", str, "edgesense", "First level(s) of every topic."),
    ("username", str, None, "User name at the broker; unset: none."),
    ("password_file", str, None, "A file holding the password (only the service user should read it); "
                                 "a password is never written in the config."),
    ("tls", bool, False, "TLS to the broker."),
    ("ca_file", str, None, "With `tls`: the CA certificate(s) to trust; unset: the system's CAs."),
    ("keepalive", int, 30, "Seconds between keepalive pings (5 to 3600): a dead connection is noticed "
                           "within 1.5 x this."),
    ("discovery", bool, True, "Home Assistant MQTT discovery."),
    ("discovery_prefix", str, "homeassistant", "Home Assistant's discovery prefix."),
)
"""Each key: name, type, default, meaning."""


def mqtt_problems(table):
    """``(key, message)`` for every problem of a raw ``[mqtt]`` table."""
    problems = []
    known = {name: kind for name, kind, _default, _meaning in MQTT_KEYS}
    for name, value in table.items():
        kind = known.get(name)
        if kind is None:
            problems.append((name, f"unknown key (allowed: {', '.join(known)})"))
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append((name, f"{value!r} is not {_kind_words(kind)}"))
        else:
            problems += [(name, problem) for problem in _value_problems(name, value)]
    if "host" not in table:
        problems.append(("host", "missing: the broker's host name or address is required"))
    if "ca_file" in table and not table.get("tls"):
        problems.append(("ca_file", "is set but tls is false; set tls = true to use it"))
    return problems


def _kind_words(kind):
    return {str: "a string", int: "an integer", bool: "true or false"}[kind]


def _value_problems(name, value):
    if name == "host" and not HOST_NAME.fullmatch(value):
        yield f"{value!r} is not a host name or address"
    elif name == "port" and not 1 <= value <= 65535:
        yield f"{value} is out of range; expected 1 to 65535"
    elif name == "keepalive" and not 5 <= value <= 3600:
        yield f"{value} is out of range; expected 5 to 3600 (seconds)"
    elif name == "node" and not NODE_NAME.fullmatch(value):
        yield f"{value!r} is not allowed; expected 1 to 64 of a-z, 0-9, _ and -"
    elif name in ("topic_prefix", "discovery_prefix") and not TOPIC_LEVELS.fullmatch(value):
        yield (f"{value!r} is not allowed; expected topic levels of letters, digits, _, . and - "
               "separated by / (no wildcards, no leading or trailing /)")
    elif name in ("username", "password_file", "ca_file") and (not value.strip() or "\0" in value):
        yield f"{value!r} is empty or holds a NUL character"


def mqtt_settings(table, base_dir):
    """The ``MqttSettings`` of a ``[mqtt]`` table that has no problems;
    relative paths resolve against ``base_dir``."""
    values = dict(table)
    for name in ("password_file", "ca_file"):
        if name in values:
            values[name] = (Path(base_dir) / Path(values[name]).expanduser()).absolute()
    values.setdefault("port", TLS_PORT if values.get("tls") else PLAIN_PORT)
    return MqttSettings(**values)

"""The ``[mqtt]`` table: where the publisher sends readings. Publishing is on
when the table is there; without it nothing MQTT is imported."""

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from app.config import BOOLEAN, INTEGER, STRING, Key, render
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
    Key("host", STRING, None, "The broker's host name or address."),
    Key("port", INTEGER, None, "The broker's port; unset: 1883, or 8883 with `tls`.", 1, maximum=65535),
    Key("node", STRING, None, "This board's name in topics and ids, 1 to 64 of `a-z`, `0-9`, `_`, `-`; "
                              "unset: the host name, reduced to those characters."),
    Key("topic_prefix", STRING, "edgesense", "First level(s) of every topic."),
    Key("username", STRING, None, "User name at the broker; unset: none."),
    Key("password_file", STRING, None, "A file holding the password on its first line, readable by the "
                                       "service user only; a password is never written in the config."),
    Key("tls", BOOLEAN, False, "TLS to the broker."),
    Key("ca_file", STRING, None, "With `tls`: the CA certificate(s) to trust; unset: the system's CAs."),
    Key("keepalive", INTEGER, 30, "Seconds between keepalive pings; a dead connection is noticed "
                                  "within 1.5 x this.", 5, maximum=3600, unit="seconds"),
    Key("discovery", BOOLEAN, True, "Home Assistant MQTT discovery."),
    Key("discovery_prefix", STRING, "homeassistant", "Home Assistant's discovery prefix."),
)
REQUIRED_MQTT_KEYS = ("host",)


def mqtt_problems(table):
    """``(key, message)`` for every problem of a raw ``[mqtt]`` table."""
    problems = []
    by_name = {key.name: key for key in MQTT_KEYS}
    for name, value in table.items():
        key = by_name.get(name)
        if key is None:
            hint = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.6)
            problems.append((name, "unknown key" + (f"; did you mean {hint[0]}?" if hint else "")
                             + f" (allowed: {', '.join(by_name)})"))
            continue
        problem = key.problem(value) or _pattern_problem(name, value)
        if problem:
            problems.append((name, problem))
    if "host" not in table:
        problems.append(("host", "missing; the broker's host name or address is required"))
    if "ca_file" in table and table.get("tls") is not True:
        problems.append(("ca_file", "is set but tls is not true; set tls = true to use it"))
    return problems


def _pattern_problem(name, value):
    if name == "host" and not HOST_NAME.fullmatch(value):
        return f"{render(value)} is not a host name or address"
    if name == "node" and not NODE_NAME.fullmatch(value):
        return f"{render(value)} is not allowed; expected 1 to 64 of a-z, 0-9, _ and -"
    if name in ("topic_prefix", "discovery_prefix") and not TOPIC_LEVELS.fullmatch(value):
        return (f"{render(value)} is not allowed; expected topic levels of letters, digits, _, . and - "
                "separated by / (no wildcards, no leading or trailing /)")
    return None


def mqtt_settings(table, base_dir):
    """The ``MqttSettings`` of a ``[mqtt]`` table that has no problems;
    relative paths resolve against ``base_dir``."""
    values = dict(table)
    for name in ("password_file", "ca_file"):
        if name in values:
            values[name] = (Path(base_dir) / Path(values[name]).expanduser()).absolute()
    values.setdefault("port", TLS_PORT if values.get("tls") else PLAIN_PORT)
    return MqttSettings(**values)


def describe_mqtt(settings):
    """What ``edgesense check`` says of the ``[mqtt]`` table: the broker and
    the topics."""
    prefix = f"{settings.topic_prefix}/{settings.node}"
    login = f", user {settings.username}" if settings.username else ""
    if settings.password_file:
        login += f", password from {settings.password_file}"
    trust = ""
    if settings.tls:
        trust = f", trusting {settings.ca_file}" if settings.ca_file else ", trusting the system's CAs"
    discovery = (f"{settings.discovery_prefix}/<component>/{settings.node}/<sensor>/config, sent again on "
                 f"{settings.discovery_prefix}/status" if settings.discovery else "off")
    return [
        f"  mqtt: {'mqtts' if settings.tls else 'mqtt'}://{settings.broker} as node {settings.node}"
        f"{login}{trust}, keepalive {settings.keepalive} s",
        f"    readings: {prefix}/<sensor>/reading (QoS 1); latest: {prefix}/<sensor>/state (retained)",
        f"    availability: {prefix}/availability (retained, and the last will)",
        f"    Home Assistant discovery: {discovery}",
    ]

"""The ``[mqtt]`` table beyond its keys' types and ranges (those are in
``app.config_schema``): the checks only it needs, its settings, and what
``edgesense check`` says of it. Publishing is on when the table is there;
without it nothing MQTT is imported."""

import importlib.util
import re
import sys
from pathlib import Path

from app.config_schema import MqttSettings
from sensors.problems import render

PLAIN_PORT = 1883
TLS_PORT = 8883
NODE_NAME = re.compile(r"[a-z0-9_-]{1,64}")
TOPIC_LEVELS = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
HOST_NAME = re.compile(r"[A-Za-z0-9._:-]{1,253}")
CLIENT_REQUIREMENT = "paho-mqtt>=2.0,<3"
"""The MQTT client library: the package's extra ``mqtt`` (pyproject.toml)."""


def mqtt_problems(values, given):
    """``(key, message)`` for what the key checks alone cannot see in the
    valid keys (``values``) of an ``[mqtt]`` table whose keys are ``given``:
    names topics can hold, the required host, a CA file without TLS."""
    problems = [(name, problem) for name, value in values.items()
                if value is not None and (problem := _pattern_problem(name, value))]
    if "host" not in given:
        problems.append(("host", "missing; the broker's host name or address is required"))
    if values.get("ca_file") is not None and values.get("tls") is not True:
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


def mqtt_settings(values, base_dir):
    """The ``MqttSettings`` of the keys of an ``[mqtt]`` table that has no
    problems (unset keys None); relative paths resolve against ``base_dir``."""
    values = {name: value for name, value in values.items() if value is not None}
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


def missing_client_library(by_install_sh=False):
    """Why the publisher cannot start on this Python, and how to fix it, in
    one line; None when paho-mqtt is there. A plain ``pip install edgesense``
    leaves it out; install.sh (``by_install_sh``: the installed unit runs the
    config) installs it for a config with ``[mqtt]``."""
    if importlib.util.find_spec("paho") is not None:
        return None
    pip = f"{sys.executable} -m pip install '{CLIENT_REQUIREMENT}'"
    fix = (f"re-run install.sh, which installs it for a config with [mqtt] (or: sudo {pip})" if by_install_sh
           else f"install it with: {pip}")
    return (f"[mqtt] is set, but paho-mqtt is not installed for {sys.executable}, "
            f"so the publisher cannot send anything; {fix}")

"""What the publisher puts on the wire: topics, payloads, reading ids and
Home Assistant discovery. Other people's code relies on this; it imports
only the stdlib, so it is read and tested without a broker or paho.

Topics, for ``prefix`` and ``node``:

- ``<prefix>/<node>/<sensor>/reading``: every reading, QoS 1, not retained;
- ``<prefix>/<node>/<sensor>/state``: the latest reading, retained;
- ``<prefix>/<node>/availability``: ``online`` / ``offline``, retained, and
  ``offline`` is the connection's last will;
- ``<discovery_prefix>/<component>/<node>/<object id>/config``: one
  retained discovery config per sensor (per-entity discovery).
"""

import json
import math
import re
import socket
from dataclasses import dataclass

ONLINE = b"online"
OFFLINE = b"offline"
HOME_ASSISTANT_STATUS = "homeassistant/status"
"""Where Home Assistant says ``online`` when it starts: discovery is sent again."""

NODE_CHARACTERS = re.compile(r"[^a-z0-9_-]+")
OBJECT_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


def default_node(hostname=None):
    """This board's host name reduced to ``[a-z0-9_-]`` (``edgesense`` if
    nothing is left)."""
    name = NODE_CHARACTERS.sub("-", (hostname or socket.gethostname()).lower()).strip("-")
    return name or "edgesense"


@dataclass(frozen=True)
class Topics:
    """The topics of one node."""

    prefix: str
    node: str

    @property
    def availability(self):
        return f"{self.prefix}/{self.node}/availability"

    def reading(self, sensor):
        return f"{self.prefix}/{self.node}/{sensor}/reading"

    def state(self, sensor):
        return f"{self.prefix}/{self.node}/{sensor}/state"


def reading_id(file_key, line_number):
    """The id of the reading on line ``line_number`` (from 0) of the readings
    file whose first line hashes to ``file_key``: the same on every
    redelivery, since rotation and compression keep a file's content, and
    unique per node (and so per sensor) as no two readings files start with
    the same line."""
    return f"{file_key}-{line_number}"


def reading_payload(reading, node, reading_id_):
    """The JSON of a reading on the wire: its ``readings.jsonl`` fields, then
    ``node`` and ``id``."""
    wire = dict(reading)
    wire["node"] = node
    wire["id"] = reading_id_
    return json.dumps(wire, separators=(",", ":")).encode()


@dataclass(frozen=True)
class EntityKind:
    """How Home Assistant shows a sensor type."""

    component: str
    device_class: str | None = None
    unit: str | None = None


BINARY = EntityKind("binary_sensor")
MEASUREMENT = EntityKind("sensor")
ENTITY_KINDS = {
    "button": BINARY,
    "motion": EntityKind("binary_sensor", "motion"),
    "line": BINARY,
    "digital_input": BINARY,
    "distance": EntityKind("sensor", "distance", "m"),
    "light": MEASUREMENT,
    "analog": MEASUREMENT,
    "cpu_temperature": EntityKind("sensor", "temperature", "°C"),
    "load_average": MEASUREMENT,
    "disk_usage": EntityKind("sensor", None, "%"),
}
"""Built-in types; a custom type is a plain ``sensor`` with no unit."""


def entity_kind(sensor):
    """The entity of a ``SensorConfig``: an analog channel's unit is its ``unit`` option."""
    kind = ENTITY_KINDS.get(sensor.type, MEASUREMENT)
    if sensor.type == "analog" and sensor.options.get("unit"):
        kind = EntityKind(kind.component, kind.device_class, sensor.options["unit"])
    return kind


def object_id(sensor_name):
    """A sensor name as Home Assistant's discovery topics allow (``.`` is not)."""
    return OBJECT_ID_CHARACTERS.sub("_", sensor_name)


def discovery_topic(discovery_prefix, node, sensor_name, component):
    return f"{discovery_prefix}/{component}/{node}/{object_id(sensor_name)}/config"


def expire_after(interval):
    """Seconds after which Home Assistant shows a sensor as unavailable: a
    little over its interval (one reading may come late)."""
    return math.ceil(interval * 1.5) + 5


def discovery_config(sensor, topics, version):
    """The retained discovery payload of one sensor (a ``SensorConfig``)."""
    kind = entity_kind(sensor)
    config = {
        "name": sensor.name,
        "unique_id": f"{topics.node}_{object_id(sensor.name)}",
        "object_id": f"{topics.node}_{object_id(sensor.name)}",
        "state_topic": topics.state(sensor.name),
        "value_template": "{{ value_json.value }}",
        "availability_topic": topics.availability,
        "payload_available": ONLINE.decode(),
        "payload_not_available": OFFLINE.decode(),
        "expire_after": expire_after(sensor.interval),
        "device": {
            "identifiers": [f"edgesense_{topics.node}"],
            "name": topics.node,
            "manufacturer": "edgesense",
            "model": "edgesense sensor node",
            "sw_version": version,
        },
    }
    if kind.component == "binary_sensor":
        config.update(payload_on="1", payload_off="0",
                      value_template="{{ value_json.value | int }}")
    else:
        config["state_class"] = "measurement"
    if kind.device_class:
        config["device_class"] = kind.device_class
    if kind.unit:
        config["unit_of_measurement"] = kind.unit
    return config


def discovery_messages(sensors, topics, discovery_prefix, version):
    """``{topic: payload bytes}`` of every sensor's discovery config."""
    return {
        discovery_topic(discovery_prefix, topics.node, sensor.name, entity_kind(sensor).component):
            json.dumps(discovery_config(sensor, topics, version), separators=(",", ":")).encode()
        for sensor in sensors
    }


def cleared_discovery(previous_topics, current_topics):
    """The discovery topics that were announced and are no longer: each gets
    an empty retained payload, so Home Assistant drops its entity."""
    return sorted(set(previous_topics) - set(current_topics))

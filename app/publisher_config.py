"""The ``[mqtt]`` table read beside the rest of a config file, until the
config's own validation takes the table in."""

import sys
from pathlib import Path

from app.config import ConfigError, config_from_dict, read_toml
from app.mqtt_settings import mqtt_problems, mqtt_settings


def load_publisher_config(path):
    """``(MqttSettings, Config)`` of a config file with an ``[mqtt]`` table,
    or None after one line per problem on stderr."""
    source = str(path)
    try:
        data = read_toml(path)
        table = data.pop("mqtt", None)
        absolute = Path(path).absolute()
        config = config_from_dict(data, path=absolute, base_dir=absolute.parent, source=source)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return None
    if not isinstance(table, dict):
        print(f"{source}: mqtt: missing; the publisher needs an [mqtt] table", file=sys.stderr)
        return None
    problems = mqtt_problems(table)
    for key, message in problems:
        print(f"{source}: mqtt.{key}: {message}", file=sys.stderr)
    return None if problems else (mqtt_settings(table, absolute.parent), config)

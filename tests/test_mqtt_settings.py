"""The [mqtt] table: defaults, validation, and what goes on the wire for it."""

from pathlib import Path

import pytest

from app.config import ConfigError, SensorConfig, config_from_dict
from app.mqtt_settings import describe_mqtt
from app.mqtt_wire import Topics, default_node, discovery_config, reading_payload

SENSOR = {"name": "load", "type": "load_average", "interval": 1.0}


def mqtt_of(table, base_dir="/etc/edgesense"):
    return config_from_dict({"sensor": [SENSOR], "mqtt": table}, path=None, base_dir=Path(base_dir),
                            source="edgesense.toml", check_paths=False).mqtt


def problems_of(table):
    with pytest.raises(ConfigError) as raised:
        mqtt_of(table)
    return raised.value.errors


def test_without_the_table_nothing_is_published():
    config = config_from_dict({"sensor": [SENSOR]}, path=None, base_dir=Path("/"), source="x",
                              check_paths=False)
    assert config.mqtt is None


def test_defaults_and_the_tls_port():
    plain = mqtt_of({"host": "hub.local"})
    assert (plain.port, plain.topic_prefix, plain.keepalive, plain.discovery, plain.discovery_prefix,
            plain.username, plain.password_file, plain.tls, plain.ca_file) == \
        (1883, "edgesense", 30, True, "homeassistant", None, None, False, None)
    assert plain.node == default_node()
    assert mqtt_of({"host": "hub", "tls": True}).port == 8883
    assert mqtt_of({"host": "hub", "tls": True, "port": 9000}).port == 9000


def test_paths_resolve_against_the_config_folder():
    settings = mqtt_of({"host": "h", "password_file": "mqtt.pass", "tls": True, "ca_file": "/ca.crt"})
    assert settings.password_file == Path("/etc/edgesense/mqtt.pass")
    assert settings.ca_file == Path("/ca.crt")


def test_every_problem_is_one_line_naming_the_key():
    assert problems_of({"port": 70000, "keepalive": 1.5, "node": "Garden Shed", "tls": "yes",
                        "discovery_prefix": "/ha"}) == [
        "edgesense.toml: mqtt.port: 70000 is out of range; expected an integer >= 1 and <= 65535",
        "edgesense.toml: mqtt.keepalive: 1.5 is a float; expected an integer >= 5 and <= 3600 (seconds)",
        "edgesense.toml: mqtt.tls: \"yes\" is a string; expected true or false",
        'edgesense.toml: mqtt.node: "Garden Shed" is not allowed; expected 1 to 64 of a-z, 0-9, _ and -',
        'edgesense.toml: mqtt.discovery_prefix: "/ha" is not allowed; expected topic levels of letters, '
        "digits, _, . and - separated by / (no wildcards, no leading or trailing /)",
        "edgesense.toml: mqtt.host: missing; the broker's host name or address is required",
    ]


def test_a_ca_file_without_tls_and_a_misspelt_key():
    errors = problems_of({"host": "h", "ca_file": "ca.crt", "keep_alive": 30})
    assert len(errors) == 2
    assert errors[0].startswith("edgesense.toml: mqtt.keep_alive: unknown key; did you mean keepalive?")
    assert errors[1] == "edgesense.toml: mqtt.ca_file: is set but tls is not true; set tls = true to use it"


def test_the_default_node_is_the_host_name_reduced():
    assert default_node("Garden.Shed_2") == "garden-shed_2"
    assert default_node("...") == "edgesense"


def test_a_reading_on_the_wire_is_its_line_plus_node_and_id():
    payload = reading_payload({"ts": "t", "sensor": "door", "value": 1, "unit": "state", "activations": 2},
                              "shed", "ab-3")
    assert payload == b'{"ts":"t","sensor":"door","value":1,"unit":"state","activations":2,"node":"shed","id":"ab-3"}'


def test_a_digital_input_is_a_binary_sensor_and_motion_has_its_class():
    topics = Topics("edgesense", "shed")
    door = discovery_config(SensorConfig("door", "button", 1.0, {"pin": 17}), topics, "1.0")
    assert (door["payload_on"], door["payload_off"], door["value_template"]) == ("1", "0", "{{ value_json.value | int }}")
    assert "device_class" not in door and "state_class" not in door
    motion = discovery_config(SensorConfig("hall.pir", "motion", 0.5, {"pin": 4}), topics, "1.0")
    assert (motion["device_class"], motion["unique_id"], motion["expire_after"]) == ("motion", "shed_hall_pir", 6)
    tank = discovery_config(SensorConfig("tank", "analog", 10.0, {"unit": "L"}), topics, "1.0")
    assert (tank["unit_of_measurement"], tank["state_class"]) == ("L", "measurement")


def test_check_describes_the_broker_and_the_topics():
    settings = mqtt_of({"host": "hub.local", "node": "shed", "username": "shed", "tls": True,
                        "password_file": "/etc/edgesense/mqtt.password"})
    assert describe_mqtt(settings) == [
        "  mqtt: mqtts://hub.local:8883 as node shed, user shed, password from /etc/edgesense/mqtt.password, "
        "trusting the system's CAs, keepalive 30 s",
        "    readings: edgesense/shed/<sensor>/reading (QoS 1); latest: edgesense/shed/<sensor>/state (retained)",
        "    availability: edgesense/shed/availability (retained, and the last will)",
        "    Home Assistant discovery: homeassistant/<component>/shed/<sensor>/config, sent again on "
        "homeassistant/status",
    ]


def test_nothing_imports_paho_until_a_publisher_connects():
    import subprocess
    import sys

    code = ("import sys, app.cli, app.supervisor, app.publisher, app.backlog\n"
            "assert not [name for name in sys.modules if name.startswith('paho')], 'paho imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr


def test_the_client_requirement_is_the_packages_mqtt_extra():
    import tomllib

    from app.mqtt_settings import CLIENT_REQUIREMENT

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["mqtt"] == [CLIENT_REQUIREMENT]

"""The key reference lives in three places that must agree: the schema in
app/config_schema.py, the README's Configuration section and the example config
that `edgesense init` writes (deploy/config.example.toml is the same file)."""

import re
import tomllib
from pathlib import Path

from app.config import REQUIRED_SENSOR_KEYS, SECTIONS
from app.config_schema import REQUIRED_MQTT_KEYS
from sensors.problems import render

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "app" / "config.example.toml"
README = ROOT / "README.md"


def reference_row(section, key):
    """The README table row of one key."""
    if (section, key.name) in {("sensor", name) for name in REQUIRED_SENSOR_KEYS} | {
            ("mqtt", name) for name in REQUIRED_MQTT_KEYS}:
        default = "required"
    elif key.default is None:
        default = "unset"
    else:
        default = f"`{render(key.default)}`"
    return f"| `{key.name}` | {default} | {key.allowed()} | {key.meaning} |"


def readme_rows():
    """Section name -> the key rows of its table in README's Configuration."""
    text = README.read_text()
    configuration = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows, section = {}, None
    for line in configuration.splitlines():
        heading = re.fullmatch(r"### `\[+(\w+)\]+`.*", line)
        if heading:
            section = heading[1]
            rows[section] = []
        elif section and line.startswith("| `"):
            rows[section].append(line)
    return rows


def example_keys():
    """Section name -> {key: value} of the example, commented keys included;
    for [[sensor]] the first section only (later ones are examples of types);
    an optional table (``# [mqtt]``) is shown commented out."""
    keys, section, sensors_seen = {}, None, 0
    for line in EXAMPLE.read_text().splitlines():
        header = re.fullmatch(r"(?:# )?\[+(\w+)\]+", line)
        if header:
            section = header[1]
            sensors_seen += section == "sensor"
            continue
        setting = re.fullmatch(r"(?:# )?(\w+) = (.+)", line)
        if setting and section and not (section == "sensor" and sensors_seen > 1):
            keys.setdefault(section, {})[setting[1]] = tomllib.loads(f"v = {setting[2]}")["v"]
    return keys


def test_readme_reference_lists_every_key_with_its_default_and_meaning():
    expected = {section: [reference_row(section, key) for key in keys]
                for section, keys in SECTIONS.items()}
    assert readme_rows() == expected


def test_example_config_shows_every_key_once_with_its_default():
    example = example_keys()
    assert {section: list(keys) for section, keys in example.items()} == {
        section: [key.name for key in keys] for section, keys in SECTIONS.items()}
    for section, keys in SECTIONS.items():
        for key in keys:
            if key.default is not None:
                assert example[section][key.name] == key.default, (section, key.name)


def test_example_config_has_the_lines_the_install_script_rewrites():
    lines = EXAMPLE.read_text().splitlines()
    assert [line for line in lines if re.match(r"^#? ?dir = ", line)] == ['dir = "edgesense-logs"']
    assert [line for line in lines if re.match(r"^#? ?state_file = ", line)] == [
        '# state_file = "edgesense-logs/edgesense.state.json"']


def test_deploy_example_is_the_app_example():
    deployed = ROOT / "deploy" / "config.example.toml"
    assert deployed.read_bytes() == EXAMPLE.read_bytes()
    assert deployed.is_symlink() and str(deployed.readlink()) == "../app/config.example.toml"

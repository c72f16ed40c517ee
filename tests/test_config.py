import os
import pickle
from pathlib import Path

import pytest

from app.config import (
    STATE_FILE_NAME,
    Config,
    ConfigError,
    GpioSettings,
    SensorConfig,
    SupervisorSettings,
    find_config,
    load_config,
)
from app.demo import demo_config
from app.statefile import STATE_FILE_RESERVE
from logging_setup import LogSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "app" / "config.example.toml"

ONE_SENSOR = '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 10\n'


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_example_config_gives_the_defaults(tmp_path):
    config = load_config(write(tmp_path / "edgesense.toml", EXAMPLE.read_text()))

    log_dir = tmp_path / "edgesense-logs"
    assert config == Config(
        path=tmp_path / "edgesense.toml",
        logging=LogSettings(dir=log_dir, reserved_file=STATE_FILE_NAME, reserved_bytes=STATE_FILE_RESERVE),
        supervisor=SupervisorSettings(state_file=log_dir / STATE_FILE_NAME),
        gpio=GpioSettings(pin_factory=None),
        sensors=(SensorConfig("load", "load_average", 10.0),
                 SensorConfig("disk", "disk_usage", 60.0, warn_above=90.0)),
    )
    assert config.logging.max_file_bytes == 256 * 1024
    assert config.logging.max_total_bytes == 4 * 1024 * 1024
    assert config.logging.compress is True


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    path = write(tmp_path / "etc" / "edgesense.toml",
                 '[logging]\ndir = "logs"\n[supervisor]\nstate_file = "../state/s.json"\n' + ONE_SENSOR)

    config = load_config(path)

    assert config.logging.dir == tmp_path / "etc" / "logs"
    assert config.supervisor.state_file == tmp_path / "etc" / ".." / "state" / "s.json"


def test_state_file_defaults_to_the_log_folder(tmp_path):
    config = load_config(write(tmp_path / "c.toml", '[logging]\ndir = "/tmp/x/logs"\n' + ONE_SENSOR))

    assert config.supervisor.state_file == Path("/tmp/x/logs") / STATE_FILE_NAME


def test_type_specific_keys_are_the_options(tmp_path):
    config = load_config(write(tmp_path / "c.toml",
                               '[[sensor]]\nname = "door"\ntype = "button"\ninterval = 0.5\n'
                               'pin = 17\nmax_failures = 2\nwarn_above = 0.5\n'))

    assert config.sensors == (SensorConfig("door", "button", 0.5, {"pin": 17},
                                           max_failures=2, warn_above=0.5),)


def test_choices_ignore_case(tmp_path):
    config = load_config(write(tmp_path / "c.toml", '[logging]\nlevel = "debug"\n'
                               '[supervisor]\nstart_method = "Spawn"\n[gpio]\npin_factory = "MOCK"\n'
                               + ONE_SENSOR))

    assert (config.logging.level, config.supervisor.start_method, config.gpio.pin_factory) == (
        "DEBUG", "spawn", "mock")


def test_validation_creates_nothing(tmp_path):
    path = write(tmp_path / "c.toml", '[logging]\ndir = "a/b/logs"\n' + ONE_SENSOR)

    load_config(path)

    assert os.listdir(tmp_path) == ["c.toml"]


def test_every_error_at_once_each_naming_the_file_and_key(tmp_path):
    path = write(tmp_path / "c.toml", '[logging]\nlevel = 3\nmax_file_bytes = 1\n'
                 '[[sensor]]\nname = "a"\ntype = "load_average"\ninterval = -1\nread_timeout = 0\n')

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.errors == [
        f'{path}: logging.level: 3 is an integer; expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL',
        f'{path}: logging.max_file_bytes: 1 is out of range; '
        'expected an integer >= 4096 and <= 1073741824 (bytes)',
        f'{path}: sensor "a".interval: -1 is out of range; expected a number > 0 and <= 86400 (seconds)',
        f'{path}: sensor "a".read_timeout: 0 is out of range; expected a number > 0 and <= 86400 (seconds)',
    ]


def test_unwritable_log_folder_is_an_error_unless_only_reading(tmp_path):
    path = write(tmp_path / "c.toml", '[logging]\ndir = "/proc/1/logs"\n' + ONE_SENSOR)

    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.errors == [
        f'{path}: logging.dir: "/proc/1/logs" cannot be created: /proc/1 is not writable']
    assert load_config(path, check_paths=False).logging.dir == Path("/proc/1/logs")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder")
def test_read_only_log_folder_is_an_error(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o555)
    path = write(tmp_path / "c.toml", '[logging]\ndir = "logs"\n' + ONE_SENSOR)

    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.errors == [f'{path}: logging.dir: "{logs}" is not writable']


def test_config_survives_pickling_for_spawned_processes(tmp_path):
    config = load_config(write(tmp_path / "c.toml", EXAMPLE.read_text()))

    assert pickle.loads(pickle.dumps(config)) == config


def test_lookup_prefers_the_environment_even_when_its_file_is_missing(tmp_path):
    write(tmp_path / "edgesense.toml", ONE_SENSOR)

    found = find_config({"EDGESENSE_CONFIG": "/nowhere/c.toml"}, cwd=tmp_path)

    assert found == Path("/nowhere/c.toml")


def test_lookup_finds_the_file_in_the_current_folder(tmp_path):
    write(tmp_path / "edgesense.toml", ONE_SENSOR)

    assert find_config({}, cwd=tmp_path) == tmp_path / "edgesense.toml"


@pytest.mark.skipif(Path("/etc/edgesense/config.toml").exists(), reason="this machine has a config")
def test_lookup_finds_nothing_without_a_file(tmp_path):
    assert find_config({"EDGESENSE_CONFIG": ""}, cwd=tmp_path) is None


def test_demo_is_a_valid_config_on_mock_pins(tmp_path):
    config = demo_config(tmp_path)

    assert config.path is None
    assert config.gpio.pin_factory == "mock"
    assert config.logging.dir == tmp_path / "edgesense-logs"
    assert [(sensor.name, sensor.type) for sensor in config.sensors] == [
        ("button", "sensors.demo:DemoButton"),
        ("motion", "sensors.demo:DemoMotion"),
        ("light", "sensors.demo:DemoLight"),
        ("load", "load_average"),
        ("disk", "disk_usage"),
    ]
    assert os.listdir(tmp_path) == []


PIN_NAMES = [0, 17, 27, "17", "GPIO17", "BCM17", "BOARD11", "J8:11", "WPI0", -1, 54,
             99999999999999999999, "GPIO999", "nonsense", "gpio17", "bcm17", "board11",
             " 17", "GPIO017", "017", "BOARD1", "J8:1", "BOARD41", ""]


@pytest.mark.parametrize("name", PIN_NAMES, ids=repr)
def test_pin_names_are_those_gpiozero_takes(name):
    """On the 40-pin header (the mock board), a name passes check exactly
    when gpiozero's MockFactory makes a pin of it."""
    from gpiozero.exc import PinInvalidPin
    from gpiozero.pins.mock import MockFactory

    from sensors.pins import is_gpio_pin

    factory = MockFactory()
    try:
        factory.pin(name).close()
        accepted = True
    except PinInvalidPin:
        accepted = False
    finally:
        factory.close()
    assert is_gpio_pin(name) == accepted


def test_compute_module_gpio_numbers_pass():
    from sensors.pins import is_gpio_pin

    assert [is_gpio_pin(pin) for pin in (53, "GPIO53", "BCM53", True, 17.0)] == [
        True, True, True, False, False]


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + ONE_SENSOR.encode())

    assert [sensor.name for sensor in load_config(path).sensors] == ["load"]


def test_the_log_budget_keeps_room_for_the_state_file_only_when_it_is_in_the_log_folder(tmp_path):
    inside = load_config(write(tmp_path / "a.toml", ONE_SENSOR))
    elsewhere = load_config(write(tmp_path / "b.toml", f'[supervisor]\nstate_file = "{tmp_path}/s.json"\n'
                                  + ONE_SENSOR))
    assert (inside.logging.reserved_file, inside.logging.reserved_bytes) == (STATE_FILE_NAME, STATE_FILE_RESERVE)
    assert (elsewhere.logging.reserved_file, elsewhere.logging.reserved_bytes) == (None, 0)

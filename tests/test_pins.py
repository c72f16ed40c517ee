"""Pins and pin factories (sensors/pins.py): pin names as gpiozero takes
them, and pin factories found where gpiozero finds them, its entry points,
so that a third-party factory that works at run time also passes check."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from app.config import ConfigError, load_config
from app.worker import build_sensor
from sensors import pins

ROOT = Path(__file__).resolve().parent.parent
HINT = 'to try without hardware, set `[gpio] pin_factory = "mock"`'

FACTORY_MODULE = '''
from gpiozero.pins.mock import MockFactory


class BenchFactory(MockFactory):
    """A third party's factory: gpiozero's mock under another name."""


class AbsentChipFactory:
    def __init__(self):
        raise OSError("no /dev/gpiochip0")
'''


def register_factories(site):
    """A package that registers two pin factories through gpiozero's
    entry-point group, as a third-party factory's wheel does."""
    site.mkdir()
    (site / "benchpins.py").write_text(FACTORY_MODULE)
    info = site / "benchpins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: benchpins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [gpiozero_pin_factories]
        bench = benchpins:BenchFactory
        absentchip = benchpins:AbsentChipFactory
        """))
    return site


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    site = register_factories(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    return site


def button_config(path, pin_factory):
    path.write_text(f'[gpio]\npin_factory = "{pin_factory}"\n'
                    '[[sensor]]\nname = "door"\ntype = "button"\ninterval = 1\npin = 17\n')
    return path


def test_pins_are_normalised_so_aliases_collide():
    assert pins.pins_of("button", {"pin": 17}) == ["GPIO17"]
    assert pins.pins_of("button", {"pin": "BOARD11"}) == ["GPIO17"]
    assert pins.pins_of("motion", {"pin": "BCM17"}) == ["GPIO17"]
    assert pins.pins_of("distance", {"echo": "J8:11", "trigger": "GPIO4"}) == [
        "GPIO17", "GPIO4"]


def test_pins_of_unknown_names_types_and_pinless_types():
    assert pins.pins_of("button", {"pin": "GPIO99"}) == ["GPIO99"]
    assert pins.pins_of("buton", {"pin": 17}) == []
    assert pins.pins_of("analog", {"channel": 1}) == []
    assert pins.pins_of("button", {}) == []


def test_a_pin_in_the_wrong_case_gets_the_one_did_you_mean():
    assert pins.pin_problem("gpio17") == (
        '"gpio17" is not a GPIO pin; expected a BCM number 0-53 (17, "GPIO17", "BCM17") '
        'or a header pin ("BOARD11", "J8:11"); did you mean GPIO17?')


def test_the_factories_are_gpiozeros_defaults_in_its_order_then_the_others():
    assert pins.factory_names() == ("lgpio", "rpigpio", "pigpio", "native", "mock")


def test_a_factory_opens_by_name_in_any_case():
    factory = pins.open_pin_factory("MOCK")
    assert isinstance(factory, MockFactory)
    factory.close()


def test_an_unknown_factory_name_is_one_line_with_a_suggestion():
    with pytest.raises(pins.NoPinFactory) as raised:
        pins.open_pin_factory("mokc")
    assert str(raised.value) == ('unknown pin factory "mokc"; did you mean mock? '
                                 "(installed: lgpio, rpigpio, pigpio, native, mock)")


def test_the_environment_names_the_factory_when_the_config_does_not():
    factory = pins.open_pin_factory(None, environ={"GPIOZERO_PIN_FACTORY": "mock"})
    assert isinstance(factory, MockFactory)
    factory.close()


def test_a_registered_third_party_factory_is_a_choice_and_opens(third_party, tmp_path):
    assert pins.factory_names() == ("lgpio", "rpigpio", "pigpio", "native",
                                    "absentchip", "bench", "mock")
    config = load_config(button_config(tmp_path / "edgesense.toml", "bench"), check_paths=False)
    assert config.gpio.pin_factory == "bench"
    factory = pins.open_pin_factory("bench")
    assert type(factory).__name__ == "BenchFactory"
    factory.close()


def test_the_worker_builds_a_sensor_on_a_third_party_factory(third_party, tmp_path):
    config = load_config(button_config(tmp_path / "edgesense.toml", "bench"), check_paths=False)
    sensor = build_sensor(config.sensors[0], config.gpio.pin_factory)
    try:
        assert type(Device.pin_factory).__name__ == "BenchFactory"
        assert sensor.read().value == 0
    finally:
        sensor.close()
        Device.pin_factory.close()
        Device.pin_factory = None


def test_a_factory_that_is_not_installed_fails_check_with_the_installed_ones(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config(button_config(tmp_path / "edgesense.toml", "bench"), check_paths=False)
    assert raised.value.errors == [
        f'{tmp_path / "edgesense.toml"}: gpio.pin_factory: "bench" is not allowed; '
        "expected one of lgpio, rpigpio, pigpio, native, mock"]


def test_a_factory_that_cannot_open_is_one_line_with_the_hint(third_party):
    with pytest.raises(pins.NoPinFactory) as raised:
        pins.open_pin_factory("absentchip")
    assert str(raised.value) == f"no GPIO here: tried absentchip (OSError: no /dev/gpiochip0); {HINT}"
    assert pins.factory_problem("absentchip") == str(raised.value)
    assert pins.factory_problem("bench") is None


def test_without_gpio_the_defaults_tried_are_named_in_one_line():
    problem = pins.factory_problem(None, environ={})
    if problem is None:
        pytest.skip("this machine has GPIO")
    assert problem.startswith("no GPIO here: tried lgpio (")
    assert ", rpigpio (" in problem and ", pigpio (" in problem and ", native (" in problem
    assert problem.endswith(f"); {HINT}")
    assert "\n" not in problem


def edgesense_check(config, site):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    env.pop("EDGESENSE_CONFIG", None)
    env.pop("GPIOZERO_PIN_FACTORY", None)
    return subprocess.run([sys.executable, "-m", "app", "check", "--config", str(config)],
                          env=env, capture_output=True, text=True, timeout=60)


def test_check_passes_a_third_party_factory_that_opens(tmp_path):
    site = register_factories(tmp_path / "site")
    result = edgesense_check(button_config(tmp_path / "edgesense.toml", "bench"), site)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "pin factory: bench" in result.stdout


def test_check_says_up_front_when_the_factory_cannot_open_and_a_sensor_needs_pins(tmp_path):
    site = register_factories(tmp_path / "site")
    result = edgesense_check(button_config(tmp_path / "edgesense.toml", "absentchip"), site)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "edgesense: warning: sensor door needs GPIO pins, but no GPIO here: tried absentchip"
        f" (OSError: no /dev/gpiochip0); {HINT}\n")
    assert result.stdout.splitlines()[0] == f"{tmp_path / 'edgesense.toml'}: OK"


def test_check_on_a_machine_without_gpio_names_the_defaults_tried(tmp_path):
    if pins.factory_problem(None, environ={}) is None:
        pytest.skip("this machine has GPIO")
    config = tmp_path / "edgesense.toml"
    config.write_text('[[sensor]]\nname = "door"\ntype = "button"\ninterval = 1\npin = 17\n'
                      '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 10\n')
    result = edgesense_check(config, tmp_path)
    assert result.returncode == 0, result.stderr
    [warning] = result.stderr.splitlines()
    assert warning.startswith("edgesense: warning: sensor door needs GPIO pins, but no GPIO here: tried lgpio (")
    assert warning.endswith(f"; {HINT}")

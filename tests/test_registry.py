"""The registry: names to classes, option checks."""

import math
from fractions import Fraction

import pytest

from sensors import registry
from sensors.base import Reading, as_reading
from sensors.digital import ButtonInput
from sensors.registry import SensorTypeError


def test_every_builtin_name_resolves_to_a_sensor_class():
    for name in registry.BUILTIN_TYPES:
        cls = registry.resolve(name)
        assert callable(cls.read), name
    assert registry.resolve("button") is ButtonInput


def test_an_import_path_resolves_like_a_builtin_name():
    assert registry.resolve("sensors.digital:ButtonInput") is ButtonInput


@pytest.mark.parametrize("type_name, message", [
    ("buton", 'unknown sensor type "buton"; did you mean button?'),
    ("thermometer", 'unknown sensor type "thermometer" (built-in types: button,'),
    ("no_such_package.sensors:Probe",
     'cannot import module "no_such_package.sensors" for sensor type'
     ' "no_such_package.sensors:Probe": ModuleNotFoundError'),
    ("sensors.digital:Nothing",
     'module "sensors.digital" has no "Nothing" (sensor type'),
    ("sensors.digital:", 'must look like "package.module:Class"'),
    ("sensors.analog:CHANNELS", 'sensor type "sensors.analog:CHANNELS" is not a class'),
    ("sensors.base:Reading", 'sensor type "sensors.base:Reading" has no read() method'),
    (17, "17 is an integer; expected a string"),
])
def test_bad_types_raise_one_clear_sensor_type_error(type_name, message):
    with pytest.raises(SensorTypeError) as raised:
        registry.resolve(type_name)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_check_options_reports_every_problem_at_once():
    options = {"pin": 1.5, "pul_up": True, "bounce_time": -0.1,
               "active_state": "low"}
    assert registry.check_options("button", options) == [
        ("pin", "1.5 is a float; expected an integer or a string"),
        ("pul_up", "unknown key; did you mean pull_up? (keys of type button: pin, pull_up,"
                   " active_state, bounce_time)"),
        ("active_state", '"low" is a string; expected true or false'),
        ("bounce_time", "-0.1 is out of range; expected a number > 0"),
    ]


def test_check_options_reports_a_missing_required_key():
    assert registry.check_options("distance", {"echo": 20}) == [
        ("trigger", "missing; type distance requires it")]


def test_check_options_reports_an_unknown_type_under_the_type_key():
    [(key, message)] = registry.check_options("buton", {"pin": 17})
    assert key == "type"
    assert "did you mean button?" in message


def test_valid_options_have_no_problems():
    assert registry.check_options("button", {"pin": 17, "bounce_time": 0.05}) == []
    assert registry.check_options("disk_usage", {}) == []
    assert registry.check_options("analog", {"channel": 7, "scale": 3}) == []


def test_booleans_are_not_numbers_and_integers_are():
    assert registry.check_options("distance", {"echo": 20, "trigger": 21,
                                               "max_distance": 2}) == []
    assert registry.check_options("distance", {"echo": 20, "trigger": 21,
                                               "queue_len": True}) == [
        ("queue_len", "true is a boolean; expected an integer")]


def test_gpio_types_take_a_pin_factory_and_system_types_do_not_need_one():
    assert registry.uses_gpio(registry.resolve("button"))
    assert registry.uses_gpio(registry.resolve("analog"))
    assert not registry.uses_gpio(registry.resolve("cpu_temperature"))


@pytest.mark.parametrize("result, expected", [
    (True, Reading(1, "")),
    (3, Reading(3, "")),
    (Fraction(1, 4), Reading(0.25, "")),
    (Reading(2.5, "V", {"raw": 7}), Reading(2.5, "V", {"raw": 7})),
])
def test_as_reading_makes_plain_numbers(result, expected):
    reading = as_reading(result)
    assert reading == expected
    assert type(reading.value) is type(expected.value)


@pytest.mark.parametrize("result", [None, math.nan, math.inf, "12", Reading(None)])
def test_as_reading_refuses_what_is_not_a_finite_number(result):
    with pytest.raises(ValueError, match="not a finite number"):
        as_reading(result)

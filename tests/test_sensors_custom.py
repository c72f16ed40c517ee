"""Custom sensor types by import path, from modules in a temporary directory."""

import itertools
import sys
import textwrap

import pytest

from sensors import pins, registry
from sensors.base import Reading, Sensor

PLAIN_CLASS = '''
class Hygrometer:
    """A DHT22-style driver that knows nothing of edgesense."""

    closed = 0

    def __init__(self, pin: int, *, offset: float = 0.0, label="hall"):
        self.pin = pin
        self.offset = offset

    def read(self):
        return 41.5 + self.offset

    def close(self):
        type(self).closed += 1
'''

SENSOR_SUBCLASS = '''
from sensors.base import Reading, Sensor


class Barometer(Sensor):
    pin_options = ("pin",)

    def __init__(self, *, pin: int, address: int = 0x76, pin_factory=None):
        self.pin_factory = pin_factory

    @classmethod
    def option_problems(cls, options):
        if options.get("address", 0x76) not in (0x76, 0x77):
            return [("address", "must be 0x76 or 0x77")]
        return []

    def read(self):
        return Reading(1013.2, "hPa", {"temperature": 21.5})
'''

_numbers = itertools.count()


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    """Write ``source`` as a uniquely named module importable for this test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(source):
        name = f"edgesense_custom_{next(_numbers)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_a_plain_class_is_built_from_its_keys_and_read_as_a_number(custom_module):
    module = custom_module(PLAIN_CLASS)
    type_name = f"{module}:Hygrometer"
    sensor = registry.build(type_name, {"pin": 4, "offset": 1.0})
    assert isinstance(sensor, Sensor)
    assert sensor.log_name == module
    assert sensor.read() == Reading(42.5, "")
    sensor.close()
    sensor.close()
    assert sensor.wrapped.closed == 1


def test_a_plain_class_gets_its_options_checked_from_its_signature(custom_module):
    type_name = f"{custom_module(PLAIN_CLASS)}:Hygrometer"
    assert registry.check_options(type_name, {"pin": 4, "label": 3}) == []
    assert registry.check_options(type_name, {"offest": 1.0, "pin": "4"}) == [
        ("offest", f"unknown key; did you mean offset? (keys of type {type_name}: pin, offset, label)"),
        ("pin", '"4" is a string; expected an integer'),
    ]
    assert registry.check_options(type_name, {}) == [
        ("pin", f"missing; type {type_name} requires it")]
    assert not registry.uses_gpio(registry.resolve(type_name))


def test_a_sensor_subclass_gets_the_pin_factory_and_its_own_checks(custom_module):
    type_name = f"{custom_module(SENSOR_SUBCLASS)}:Barometer"
    assert registry.uses_gpio(registry.resolve(type_name))
    assert pins.pins_of(type_name, {"pin": 2}) == ["GPIO2"]
    assert registry.check_options(type_name, {"pin": 2, "address": 0x20}) == [
        ("address", "must be 0x76 or 0x77")]
    factory = object()
    with registry.build(type_name, {"pin": 2}, pin_factory=factory) as sensor:
        assert sensor.pin_factory is factory
        assert sensor.read() == Reading(1013.2, "hPa", {"temperature": 21.5})


def test_a_module_that_fails_to_import_is_a_sensor_type_error(custom_module):
    module = custom_module("raise RuntimeError('no I2C bus')\n")
    with pytest.raises(registry.SensorTypeError,
                       match="RuntimeError: no I2C bus"):
        registry.resolve(f"{module}:Anything")

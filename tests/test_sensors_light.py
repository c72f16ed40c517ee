"""LDR light level on gpiozero's MockChargingPin."""

from gpiozero.pins.mock import MockChargingPin

from sensors import registry
from sensors.base import Reading


def light_with_charge_time(factory, charge_time):
    factory.pin(6, pin_class=MockChargingPin, charge_time=charge_time)
    options = {"pin": 6, "charge_time_limit": 0.2, "queue_len": 1}
    return registry.build("light", options, factory)


def test_dark_reads_zero(mock_factory):
    # The capacitor never charges within the limit.
    with light_with_charge_time(mock_factory, 1.0) as sensor:
        assert sensor.read() == Reading(0.0, "fraction")


def test_bright_reads_near_one_and_brighter_than_dim(mock_factory):
    with light_with_charge_time(mock_factory, 0.0) as sensor:
        bright = sensor.read()
    mock_factory.reset()
    with light_with_charge_time(mock_factory, 0.05) as sensor:
        dim = sensor.read()
    assert bright.unit == dim.unit == "fraction"
    # Charging is timed by a mock thread: about 1.0 and 0.75, give or take
    # scheduling delays (up to 0.15 s before dim reads as dark).
    assert bright.value > 0.7
    assert 0.0 < dim.value < bright.value

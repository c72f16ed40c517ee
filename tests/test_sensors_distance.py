"""HC-SR04 distance on gpiozero's MockTriggerPin."""

import warnings

import pytest
from gpiozero.exc import PinInvalidPin
from gpiozero.pins.mock import MockTriggerPin

from sensors import registry

SPEED_OF_SOUND = 343.26  # m/s, as gpiozero computes distance


@pytest.fixture
def echo_of(mock_factory):
    def wire(echo_time, echo=20, trigger=21):
        echo_pin = mock_factory.pin(echo)
        mock_factory.pin(trigger, pin_class=MockTriggerPin, echo_pin=echo_pin,
                         echo_time=echo_time)
    return wire


def build(options, factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # software PWM fallback on mock pins
        return registry.build("distance", options, factory)


def test_trigger_and_echo_on_one_pin_is_reported_before_building():
    assert registry.check_options("distance", {"echo": 20, "trigger": 20}) == [
        ("trigger", "20 is the echo pin too; expected a pin of its own")]


def test_distance_is_half_the_echo_time_at_the_speed_of_sound(echo_of, mock_factory):
    echo_of(0.02)
    expected = 0.02 * SPEED_OF_SOUND / 2
    options = {"echo": 20, "trigger": 21, "max_distance": 5.0, "queue_len": 3}
    with build(options, mock_factory) as sensor:
        reading = sensor.read()
    assert reading.unit == "m"
    # Mock echoes are timed by threads and sleeps: allow 15% either way.
    assert reading.value == pytest.approx(expected, rel=0.15)


def test_distance_beyond_max_distance_reads_max_distance(echo_of, mock_factory):
    echo_of(0.02)  # about 3.4 m
    options = {"echo": 20, "trigger": 21, "max_distance": 2.0, "queue_len": 3}
    with build(options, mock_factory) as sensor:
        assert sensor.read().value == 2.0


def test_distance_releases_both_pins(echo_of, mock_factory):
    echo_of(0.004)
    build({"echo": 20, "trigger": 21, "queue_len": 1}, mock_factory).close()
    registry.build("button", {"pin": 20}, mock_factory).close()
    registry.build("button", {"pin": 21}, mock_factory).close()


def test_a_constructor_that_fails_half_way_releases_the_pin_it_took(mock_factory):
    # The echo pin is taken first; the trigger pin does not exist.
    with pytest.raises(PinInvalidPin, match=r"^99 is not a valid pin name"):
        build({"echo": 20, "trigger": 99}, mock_factory)
    registry.build("button", {"pin": 20}, mock_factory).close()

"""Digital inputs on gpiozero mock pins: state plus activations between reads."""

import threading

import pytest
from gpiozero.exc import GPIOPinInUse

from sensors import registry
from sensors.base import Reading

BOUND = 5.0  # seconds any wait on gpiozero's sampling threads may take


def press(pin, times):
    """Press a pulled-up button: the pin goes low while pressed."""
    for _ in range(times):
        pin.drive_low()
        pin.drive_high()


def test_button_counts_every_press_between_readings(mock_factory):
    pin = mock_factory.pin(17)
    with registry.build("button", {"pin": 17}, mock_factory) as button:
        assert button.read() == Reading(0, "state", {"activations": 0})
        press(pin, 3)
        assert button.read() == Reading(0, "state", {"activations": 3})
        pin.drive_low()
        assert button.read() == Reading(1, "state", {"activations": 1})
        assert button.read() == Reading(1, "state", {"activations": 0})


def test_no_press_is_lost_while_readings_run_concurrently(mock_factory):
    pin = mock_factory.pin(17)
    presses, readers_total = 2000, []
    with registry.build("button", {"pin": 17}, mock_factory) as button:
        done = threading.Event()

        def read_until_done():
            while not done.is_set():
                readers_total.append(button.read().extra["activations"])

        reader = threading.Thread(target=read_until_done)
        reader.start()
        press(pin, presses)
        done.set()
        reader.join(BOUND)
        readers_total.append(button.read().extra["activations"])
    assert sum(readers_total) == presses


def test_digital_input_is_active_high_without_pull(mock_factory):
    pin = mock_factory.pin(4)
    with registry.build("digital_input", {"pin": "GPIO4"}, mock_factory) as sensor:
        pin.drive_high()
        pin.drive_low()
        pin.drive_high()
        assert sensor.read() == Reading(1, "state", {"activations": 2})


def test_active_state_inverts_a_floating_input(mock_factory):
    pin = mock_factory.pin(4)
    options = {"pin": 4, "active_state": False}
    with registry.build("button", options, mock_factory) as sensor:
        pin.drive_high()
        assert sensor.read().value == 0
        pin.drive_low()
        assert sensor.read() == Reading(1, "state", {"activations": 1})


@pytest.mark.parametrize("type_name", ["motion", "line"])
def test_smoothed_inputs_count_activations(type_name, mock_factory):
    pin = mock_factory.pin(5)
    options = {"pin": 5, "queue_len": 1, "sample_rate": 100}
    with registry.build(type_name, options, mock_factory) as sensor:
        assert sensor.device.wait_for_inactive(BOUND)
        pin.drive_high()
        assert sensor.device.wait_for_active(BOUND)
        assert sensor.read() == Reading(1, "state", {"activations": 1})
        pin.drive_low()
        assert sensor.device.wait_for_inactive(BOUND)
        assert sensor.read() == Reading(0, "state", {"activations": 0})


def test_close_releases_the_pin_and_is_idempotent(mock_factory):
    button = registry.build("button", {"pin": 17}, mock_factory)
    with pytest.raises(GPIOPinInUse):
        registry.build("button", {"pin": "BOARD11"}, mock_factory)
    button.close()
    button.close()
    with pytest.raises(RuntimeError, match="closed"):
        button.read()
    registry.build("button", {"pin": 17}, mock_factory).close()


def test_active_state_with_pull_up_is_reported_before_building():
    problems = registry.check_options(
        "button", {"pin": 4, "pull_up": True, "active_state": False})
    assert problems == [("active_state", "false declares a floating input;"
                         " expected no pull_up beside it")]

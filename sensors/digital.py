"""Digital inputs: buttons, PIR motion sensors, line sensors, any on/off pin.

A reading is the state (0 or 1) and the number of activations since the
previous reading, counted by gpiozero's ``when_activated`` callback as they
happen, so a press between two readings is never missed::

    reading sensor=door value=0 unit=state activations=2

``pull_up`` chooses the internal pull resistor (each type has gpiozero's
default). ``active_state`` declares a floating input (an external pull
resistor) and which level means active; gpiozero allows it only without an
internal pull, so it cannot be combined with ``pull_up``.
"""

import threading

import gpiozero

from sensors.base import DeviceSensor, Reading, at_least, between
from sensors.problems import render


class DigitalSensor(DeviceSensor):
    """The state of one input pin plus its activations since the last read."""

    pin_options = ("pin",)

    def __init__(self, device):
        self._lock = threading.Lock()
        self._activations = 0
        super().__init__(device)
        try:
            device.when_activated = self._count_activation
        except BaseException:
            self.close()
            raise

    def _count_activation(self):
        # Runs in gpiozero's edge or sampling thread, not in the worker's.
        with self._lock:
            self._activations += 1

    def read(self) -> Reading:
        state = int(self.device.is_active)
        with self._lock:
            activations, self._activations = self._activations, 0
        return Reading(state, "state", {"activations": activations})

    def close(self) -> None:
        device = self._device
        if device is not None:
            device.when_activated = None
        super().close()

    @classmethod
    def option_problems(cls, options):
        problems = at_least(options, "bounce_time", 0, inclusive=False)
        if "active_state" in options and "pull_up" in options:
            problems.append(("active_state", f"{render(options['active_state'])} declares a"
                             " floating input; expected no pull_up beside it"))
        return problems


def _pull(pull_up, active_state, default):
    """gpiozero's ``pull_up`` argument: None (floating) with an
    active_state, else the configured pull or the type's default."""
    if active_state is not None:
        return None
    return default if pull_up is None else pull_up


class SmoothedDigitalSensor(DigitalSensor):
    """Motion and line sensors: gpiozero samples them in a background thread
    and averages a queue of samples against a threshold."""

    @classmethod
    def option_problems(cls, options):
        return super().option_problems(options) + (
            at_least(options, "queue_len", 1)
            + at_least(options, "sample_rate", 0, inclusive=False)
            + between(options, "threshold", 0.0, 1.0)
        )


class ButtonInput(DigitalSensor):
    """``type = "button"``: a push button or switch (pulled up by default).

    Built on gpiozero's DigitalInputDevice, which is its Button without the
    hold feature: Button's hold thread wakes ten times a second, forever,
    for ``when_held`` events a sensor read on a schedule never uses.
    """

    def __init__(self, pin: int | str, *, pull_up: bool | None = None,
                 active_state: bool | None = None,
                 bounce_time: float | None = None, pin_factory=None):
        super().__init__(gpiozero.DigitalInputDevice(
            pin, pull_up=_pull(pull_up, active_state, True),
            active_state=active_state,
            bounce_time=bounce_time, pin_factory=pin_factory))


class DigitalInput(DigitalSensor):
    """``type = "digital_input"``: any on/off input (not pulled by default)."""

    def __init__(self, pin: int | str, *, pull_up: bool | None = None,
                 active_state: bool | None = None,
                 bounce_time: float | None = None, pin_factory=None):
        super().__init__(gpiozero.DigitalInputDevice(
            pin, pull_up=_pull(pull_up, active_state, False),
            active_state=active_state,
            bounce_time=bounce_time, pin_factory=pin_factory))


class MotionInput(SmoothedDigitalSensor):
    """``type = "motion"``: a PIR motion sensor."""

    def __init__(self, pin: int | str, *, pull_up: bool | None = None,
                 active_state: bool | None = None, queue_len: int = 1,
                 sample_rate: float = 10, threshold: float = 0.5,
                 pin_factory=None):
        super().__init__(gpiozero.MotionSensor(
            pin, pull_up=_pull(pull_up, active_state, False),
            active_state=active_state,
            queue_len=queue_len, sample_rate=sample_rate, threshold=threshold,
            pin_factory=pin_factory))


class LineInput(SmoothedDigitalSensor):
    """``type = "line"``: an infra-red line sensor such as the TCRT5000."""

    def __init__(self, pin: int | str, *, pull_up: bool | None = None,
                 active_state: bool | None = None, queue_len: int = 5,
                 sample_rate: float = 100, threshold: float = 0.5,
                 pin_factory=None):
        super().__init__(gpiozero.LineSensor(
            pin, pull_up=_pull(pull_up, active_state, False),
            active_state=active_state,
            queue_len=queue_len, sample_rate=sample_rate, threshold=threshold,
            pin_factory=pin_factory))

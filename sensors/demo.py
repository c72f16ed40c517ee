"""Demo sensors for ``edgesense run`` without a config: real gpiozero devices
on gpiozero's mock pins, each driving its own pin with a demo pattern.

Mock pin state lives in one process, so each sensor owns its MockFactory (or
uses the one it is given) and drives the pin from a thread of its own, inside
the sensor's process. Nothing here touches real GPIO.

>>> with DemoButton(pin=17) as button:
...     reading = button.read()
>>> reading.value in (0, 1), reading.unit
(True, 'state')
"""

import math
import random
import threading
import time

from gpiozero import Button, LightSensor, MotionSensor
from gpiozero.pins.mock import MockChargingPin, MockFactory

from sensors.base import Reading, Sensor, at_least


def _mock_factory(pin_factory):
    return pin_factory if isinstance(pin_factory, MockFactory) else MockFactory()


class _DrivenDemo(Sensor):
    """A gpiozero device on a mock pin, and a thread that drives the pin
    until ``close()``."""

    pin_options = ("pin",)

    def __init__(self):
        self._stopping = threading.Event()
        self._driver = threading.Thread(target=self._drive, name=f"{type(self).__name__}-pattern",
                                        daemon=True)
        self._driver.start()

    def _drive(self):
        raise NotImplementedError

    def _pause(self, seconds):
        """Sleep, unless closing; True when the pattern should go on."""
        return not self._stopping.wait(seconds)

    def close(self):
        self._stopping.set()
        if self._driver.is_alive() and self._driver is not threading.current_thread():
            self._driver.join(timeout=2)
        self.device.close()


class DemoButton(_DrivenDemo):
    """A push button pressed now and then: the value is 1 while pressed, and
    ``activations`` counts the presses since the previous reading."""

    def __init__(self, *, pin: int | str = 17, pin_factory=None):
        self.pin = _mock_factory(pin_factory).pin(pin)
        self.device = Button(pin, pin_factory=self.pin.factory)
        self._presses = 0
        self.device.when_pressed = self._count
        super().__init__()

    def _count(self):
        self._presses += 1

    def _drive(self):
        chance = random.Random()
        while self._pause(chance.uniform(0.3, 2.5)):
            self.pin.drive_low()
            if not self._pause(chance.uniform(0.1, 0.6)):
                break
            self.pin.drive_high()

    def read(self):
        presses, self._presses = self._presses, 0
        return Reading(int(self.device.is_pressed), "state", {"activations": presses})


class DemoMotion(_DrivenDemo):
    """A PIR motion sensor that sees someone pass every few seconds."""

    def __init__(self, *, pin: int | str = 27, pin_factory=None):
        self.pin = _mock_factory(pin_factory).pin(pin)
        self.device = MotionSensor(pin, pin_factory=self.pin.factory)
        self._motions = 0
        self.device.when_motion = self._count
        super().__init__()

    def _count(self):
        self._motions += 1

    def _drive(self):
        chance = random.Random()
        while self._pause(chance.uniform(1.0, 4.0)):
            self.pin.drive_high()
            if not self._pause(chance.uniform(0.5, 2.0)):
                break
            self.pin.drive_low()

    def read(self):
        motions, self._motions = self._motions, 0
        return Reading(int(self.device.motion_detected), "state", {"activations": motions})


class DemoLight(_DrivenDemo):
    """A light-dependent resistor (LDR) under a sky that brightens and darkens
    over ``period`` seconds: the value goes between about 0.1 and 0.9."""

    CHARGE_TIME_LIMIT = 0.01

    @classmethod
    def option_problems(cls, options):
        return at_least(options, "period", 0, inclusive=False)

    def __init__(self, *, pin: int | str = 22, period: float = 30.0, pin_factory=None):
        self.period = period
        self.pin = _mock_factory(pin_factory).pin(pin, pin_class=MockChargingPin)
        self.pin.charge_time = self._charge_time()
        self.device = LightSensor(pin, charge_time_limit=self.CHARGE_TIME_LIMIT,
                                  pin_factory=self.pin.factory)
        super().__init__()

    def _charge_time(self):
        """A dark LDR charges slowly: the charge time follows the sky."""
        brightness = 0.5 + 0.4 * math.sin(2 * math.pi * time.monotonic() / self.period)
        return self.CHARGE_TIME_LIMIT * (1 - brightness)

    def _drive(self):
        while self._pause(0.2):
            self.pin.charge_time = self._charge_time()

    def read(self):
        return Reading(round(self.device.value, 3), "fraction")

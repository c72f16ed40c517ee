"""Light level from a light-dependent resistor (LDR) and a capacitor.

gpiozero times how long the capacitor takes to charge through the LDR, in a
background thread; the reading is 0 (dark: the charge took
``charge_time_limit`` or longer) to 1 (bright), averaged over ``queue_len``
charges.
"""

import gpiozero

from sensors.base import DeviceSensor, Reading, at_least


class Light(DeviceSensor):
    """``type = "light"``: an LDR circuit on ``pin``."""

    pin_options = ("pin",)

    def __init__(self, pin: int | str, *, charge_time_limit: float = 0.01,
                 queue_len: int = 5, pin_factory=None):
        super().__init__(gpiozero.LightSensor(
            pin, charge_time_limit=charge_time_limit, queue_len=queue_len,
            pin_factory=pin_factory))

    def read(self) -> Reading:
        return Reading(self.device.value, "fraction")

    @classmethod
    def option_problems(cls, options):
        return (at_least(options, "charge_time_limit", 0, inclusive=False)
                + at_least(options, "queue_len", 1))

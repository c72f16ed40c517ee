"""Ultrasonic distance (HC-SR04), in metres.

gpiozero triggers the sensor continuously in a background thread and
reports the median of its last ``queue_len`` echoes; a reading takes that
median. Distances beyond ``max_distance`` read as ``max_distance``.
"""

import gpiozero

from sensors.base import DeviceSensor, Reading, at_least
from sensors.problems import render


class Distance(DeviceSensor):
    """``type = "distance"``: an HC-SR04 on ``echo`` and ``trigger`` pins."""

    pin_options = ("echo", "trigger")

    def __init__(self, echo: int | str, trigger: int | str, *,
                 max_distance: float = 1.0, queue_len: int = 9,
                 pin_factory=None):
        super().__init__(gpiozero.DistanceSensor(
            echo=echo, trigger=trigger, max_distance=max_distance,
            queue_len=queue_len, pin_factory=pin_factory))

    def read(self) -> Reading:
        return Reading(self.device.distance, "m")

    @classmethod
    def option_problems(cls, options):
        problems = (at_least(options, "max_distance", 0, inclusive=False)
                    + at_least(options, "queue_len", 1))
        if "echo" in options and options.get("echo") == options.get("trigger"):
            problems.append(("trigger", f"{render(options['trigger'])} is the echo pin too;"
                             " expected a pin of its own"))
        return problems

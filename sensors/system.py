"""Linux internals through gpiozero's internal devices: CPU temperature, load
average and disk usage. Each reads a file or path you can point elsewhere, so
they run on any Linux machine and in tests.
"""

import gpiozero
from gpiozero.pins.mock import MockFactory

from sensors.base import DeviceSensor, Reading, one_of


def _factory_for_internal_devices(pin_factory):
    """The pin factory to hand an internal device.

    Internal devices read files; gpiozero asks their pin factory only for
    ``ticks()`` to time its events, which edgesense does not use. Without an
    explicit factory gpiozero would load its default one, which opens the GPIO
    chip on a Pi and fails on any other machine, so these get a mock one.
    """
    if pin_factory is not None:
        return pin_factory
    return gpiozero.Device.pin_factory or MockFactory()


class CpuTemperature(DeviceSensor):
    """``type = "cpu_temperature"``: degrees Celsius from ``sensor_file``."""

    uses_gpio = False

    def __init__(self, *,
                 sensor_file: str = "/sys/class/thermal/thermal_zone0/temp",
                 pin_factory=None):
        super().__init__(gpiozero.CPUTemperature(
            sensor_file, pin_factory=_factory_for_internal_devices(pin_factory)))

    def read(self) -> Reading:
        return Reading(self.device.temperature, "C")


class LoadAverage(DeviceSensor):
    """``type = "load_average"``: the 1, 5 or 15 minute load average."""

    uses_gpio = False

    def __init__(self, *, load_average_file: str = "/proc/loadavg",
                 minutes: int = 5, pin_factory=None):
        super().__init__(gpiozero.LoadAverage(
            load_average_file, minutes=minutes,
            pin_factory=_factory_for_internal_devices(pin_factory)))

    def read(self) -> Reading:
        return Reading(self.device.load_average, "load")

    @classmethod
    def option_problems(cls, options):
        return one_of(options, "minutes", (1, 5, 15))


class DiskUsage(DeviceSensor):
    """``type = "disk_usage"``: percent used of the filesystem holding
    ``filesystem`` (as ``df`` counts it)."""

    uses_gpio = False

    def __init__(self, *, filesystem: str = "/", pin_factory=None):
        super().__init__(gpiozero.DiskUsage(
            filesystem, pin_factory=_factory_for_internal_devices(pin_factory)))

    def read(self) -> Reading:
        return Reading(self.device.usage, "%")

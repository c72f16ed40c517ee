"""Sensor types: the Sensor interface, Reading, the registry, gpiozero and
system sensors. Never imports ``app``."""

from sensors.base import Reading, Sensor

__all__ = ["Reading", "Sensor"]

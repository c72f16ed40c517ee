"""One channel of an MCP3xxx analog-to-digital converter on the SPI bus.

gpiozero reads the channel as a fraction of the reference voltage (0..1, or
-1..1 for an MCP33xx in differential mode); a linear calibration turns it
into a value in a unit: ``value = scale * fraction + offset``. For a TMP36
temperature sensor on a 3.3 V reference, ``scale = 330``, ``offset = -50``,
``unit = "C"``. The reading's ``raw`` field keeps the converter's count.

Analog sensors report no pins for conflict detection: several channels of one
converter share the SPI bus by design.
"""

import gpiozero

from sensors.base import DeviceSensor, Reading, between, one_of

CHANNELS = {
    "MCP3001": 1, "MCP3002": 2, "MCP3004": 4, "MCP3008": 8,
    "MCP3201": 1, "MCP3202": 2, "MCP3204": 4, "MCP3208": 8,
    "MCP3301": 1, "MCP3302": 4, "MCP3304": 8,
}
"""The converters gpiozero supports, with their number of channels."""


class AnalogChannel(DeviceSensor):
    """``type = "analog"``: channel ``channel`` of ``chip`` on SPI chip-select
    ``device`` (0: CE0, 1: CE1)."""

    def __init__(self, *, chip: str = "MCP3008", channel: int = 0,
                 differential: bool = False, device: int = 0,
                 scale: float = 1.0, offset: float = 0.0, unit: str = "",
                 pin_factory=None):
        if chip not in CHANNELS:
            raise ValueError(f"unknown chip {chip!r} (one of {', '.join(CHANNELS)})")
        spi = {"device": device, "pin_factory": pin_factory}
        if CHANNELS[chip] > 1:
            # Single-channel chips are always differential and take neither.
            spi.update(channel=channel, differential=differential)
        super().__init__(getattr(gpiozero, chip)(**spi))
        self.scale = scale
        self.offset = offset
        self.unit = unit

    def read(self) -> Reading:
        adc = self.device
        value = self.scale * adc.value + self.offset
        return Reading(value, self.unit, {"raw": adc.raw_value})

    @classmethod
    def option_problems(cls, options):
        problems = one_of(options, "chip", tuple(CHANNELS))
        problems += one_of(options, "device", (0, 1))
        channels = CHANNELS.get(options.get("chip", "MCP3008"))
        if channels is not None:
            problems += between(options, "channel", 0, channels - 1)
        return problems

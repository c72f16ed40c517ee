"""The threshold watch: ``warn_above`` and ``warn_below`` of a sensor."""

from app.readings import format_value


class ThresholdWatch:
    """``warn_above`` / ``warn_below`` as WARNING records: one when a reading
    leaves the band, one when it comes back, none while it stays."""

    def __init__(self, name, warn_above=None, warn_below=None):
        self.name = name
        self.warn_above = warn_above
        self.warn_below = warn_below
        self.state = "within"

    def check(self, reading, logger):
        state = self._state_of(reading.value)
        if state == self.state:
            return
        self.state = state
        value = format_value(reading.value)
        if state == "above":
            logger.warning("sensor=%s value=%s %s above warn_above=%s",
                           self.name, value, reading.unit, self.warn_above)
        elif state == "below":
            logger.warning("sensor=%s value=%s %s below warn_below=%s",
                           self.name, value, reading.unit, self.warn_below)
        else:
            logger.warning("sensor=%s value=%s %s back within limits",
                           self.name, value, reading.unit)

    def _state_of(self, value):
        if self.warn_above is not None and value > self.warn_above:
            return "above"
        if self.warn_below is not None and value < self.warn_below:
            return "below"
        return "within"

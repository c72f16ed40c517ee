"""The threshold watch: ``warn_above`` and ``warn_below`` of a sensor."""

from app.readings import format_value


class ThresholdWatch:
    """``warn_above`` / ``warn_below`` as WARNING records: one when a reading
    leaves the band, one when it comes back, none while it stays.

    >>> import logging, sys
    >>> from sensors.base import Reading
    >>> logger = logging.getLogger("doctest.thresholds")
    >>> logger.addHandler(logging.StreamHandler(sys.stdout))
    >>> watch = ThresholdWatch("disk", warn_above=90)
    >>> for value in (80, 95, 97, 85):
    ...     watch.check(Reading(value, "%"), logger)
    sensor=disk value=95 % above warn_above=90
    sensor=disk value=85 % back within limits
    >>> ThresholdWatch("count", warn_below=1).check(Reading(0), logger)
    sensor=count value=0 below warn_below=1
    """

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
        value = " ".join(filter(None, [format_value(reading.value), reading.unit]))
        if state == "above":
            logger.warning("sensor=%s value=%s above warn_above=%s",
                           self.name, value, self.warn_above)
        elif state == "below":
            logger.warning("sensor=%s value=%s below warn_below=%s",
                           self.name, value, self.warn_below)
        else:
            logger.warning("sensor=%s value=%s back within limits", self.name, value)

    def _state_of(self, value):
        if self.warn_above is not None and value > self.warn_above:
            return "above"
        if self.warn_below is not None and value < self.warn_below:
            return "below"
        return "within"

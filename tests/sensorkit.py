"""Custom sensor types for process tests, named by import path
(``sensorkit:Counter``): the same way a user adds a sensor."""

import itertools
import logging
import sys
import time

from sensors.base import Reading, Sensor

logger = logging.getLogger(__name__)


class Counter(Sensor):
    """Reads 0, 1, 2, ...: a gap in the numbers is a lost reading."""

    def __init__(self, start=0):
        self._numbers = itertools.count(start)

    def read(self):
        return Reading(next(self._numbers), "count")


class CrashOnBuild(Sensor):
    """A device that is never there."""

    def __init__(self):
        raise RuntimeError("no such device")

    def read(self):
        raise AssertionError("never built")


class Hang(Sensor):
    """Reads ``good_reads`` times, then never returns from read()."""

    def __init__(self, good_reads=1):
        self._left = good_reads

    def read(self):
        if self._left <= 0:
            time.sleep(3600)
        self._left -= 1
        return Reading(1, "")


class Burst(Sensor):
    """Logs ``records`` numbered lines per read: ``burst seq=N``."""

    def __init__(self, records=100):
        self._records = records
        self._numbers = itertools.count()

    def read(self):
        for _ in range(self._records):
            logger.info("burst seq=%d", next(self._numbers))
        return Reading(self._records, "records")


class Chatty(Sensor):
    """Prints two lines on stdout and one on stderr per read."""

    def __init__(self):
        self._numbers = itertools.count()

    def read(self):
        number = next(self._numbers)
        print(f"chatty stdout {number}")
        print(f"chatty second line {number}", flush=True)
        print(f"chatty stderr {number}", file=sys.stderr)
        return Reading(number, "count")

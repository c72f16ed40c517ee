"""The heartbeat: the shared memory through which a worker tells the
supervisor how it is doing, a contract of the two."""

import math
import multiprocessing


class _Slot:
    """One double in the heartbeat's shared array."""

    def __init__(self, index, kind=float):
        self.index = index
        self.kind = kind

    def __get__(self, heartbeat, owner=None):
        if heartbeat is None:
            return self
        return self.kind(heartbeat.array[self.index])

    def __set__(self, heartbeat, value):
        heartbeat.array[self.index] = value


class Heartbeat:
    """Shared memory the supervisor reads without a message round trip:
    when the loop last ticked, when the current read started and ended
    (time.monotonic), and the last reading's value and wall-clock time.

    Create it in the supervisor with ``Heartbeat.create(ctx, previous=...)``
    (the sensor's last heartbeat, which hands on ``build_failure``) and pass
    it to the worker as a Process argument (it pickles under every start
    method).
    Times are ``time.monotonic()`` (system-wide, so comparable across
    processes) except ``last_reading_time`` (``time.time()``). A read is in
    progress while ``read_started > read_ended``; the supervisor judges a
    hang by how long that lasts. The loop ticks before each read and again
    before it sleeps: a first tick means the sensor is built and the loop
    runs. Each field is one double written without a lock: read each once
    and treat it as a hint.

    >>> heartbeat = Heartbeat.create()
    >>> heartbeat.read_started = 12.0
    >>> heartbeat.reading
    True
    >>> heartbeat.readings
    0
    """

    FIELDS = ("tick", "read_started", "read_ended", "last_value",
              "last_reading_time", "readings", "failures", "build_failure")

    tick = _Slot(0)
    read_started = _Slot(1)
    read_ended = _Slot(2)
    last_value = _Slot(3)
    last_reading_time = _Slot(4)
    readings = _Slot(5, int)
    failures = _Slot(6, int)
    build_failure = _Slot(7, int)
    """A fingerprint of why the sensor could not be built (0: it was), kept
    from one start to the next so that the same failure again is one line."""

    def __init__(self, array):
        self.array = array

    @classmethod
    def create(cls, ctx=multiprocessing, previous=None):
        """A new heartbeat; ``previous``, the heartbeat of the sensor's last
        start, hands on its ``build_failure``."""
        heartbeat = cls(ctx.RawArray("d", len(cls.FIELDS)))
        heartbeat.last_value = math.nan
        if previous is not None:
            heartbeat.build_failure = previous.build_failure
        return heartbeat

    @property
    def reading(self):
        """True while a read is in progress."""
        return self.read_started > self.read_ended

    def snapshot(self):
        """Every field at once, as a dict."""
        return {name: getattr(self, name) for name in self.FIELDS}

"""The worker process: one sensor, read on its own schedule."""


class Heartbeat:
    """Shared memory the supervisor reads without a message round trip:
    when the loop last ticked, when the current read started and ended
    (time.monotonic), and the last reading's value and wall-clock time."""


def run_worker(sensor, *, pin_factory, sender, stop, heartbeat, log_level="INFO"):
    """Process target for ``sensor:<name>``."""
    raise NotImplementedError

"""The states of a supervised sensor process. Imports nothing."""

import enum


class SensorState(enum.Enum):
    """Where one sensor's process is in its life.

    STARTING -> RUNNING once its process has started;
    RUNNING -> BACKOFF when it exits or hangs, and a restart is due later;
    RUNNING -> FAILED when it exits too often within the restart window;
    BACKOFF -> STARTING when the delay is over;
    FAILED -> STARTING when the cool-down is over;
    any -> STOPPING -> STOPPED when the supervisor stops it.
    """

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"

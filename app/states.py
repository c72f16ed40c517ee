"""The states of a supervised sensor process. Imports nothing."""

import enum


class SensorState(enum.Enum):
    """Where one sensor's process is in its life.

    STOPPED -> STARTING when its process is started;
    STARTING -> RUNNING once its loop has ticked (its sensor is built);
    STARTING/RUNNING -> BACKOFF when it exits or hangs, and a restart is due later;
    STARTING/RUNNING -> FAILED when it exits too often within the restart window;
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

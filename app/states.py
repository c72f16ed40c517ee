"""The states of the supervisor and of every child it supervises. Imports nothing.

A child is the log listener, a sensor's worker, or any later kind (the
publisher): each is a ``ManagedChild`` (``app/process.py``) that moves
through ``ChildState`` along ``CHILD_TRANSITIONS`` only. The supervisor's own
life is a ``SupervisorPhase``. Both write their ``value`` in the state file,
so ``edgesense status`` shows them in the same words.
"""

import enum


class ChildState(enum.Enum):
    """Where one supervised child is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


SensorState = ChildState
"""The name the sensors' states had first; every child has the same states."""


class SupervisorPhase(enum.Enum):
    """Where the supervisor is: starting its children, running them,
    stopping them (each with its deadline) and then stopped."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


ALIVE = (ChildState.STARTING, ChildState.RUNNING)
"""The child's process runs and is expected to."""

WAITING = (ChildState.BACKOFF, ChildState.FAILED)
"""No process; a start is planned (or, for a FAILED child whose policy has
no cool-down, the child has given up)."""

HAS_PROCESS = (*ALIVE, ChildState.STOPPING)
"""A process exists that the supervisor must reap."""


CHILD_TRANSITIONS = frozenset({
    (ChildState.STOPPED, ChildState.STARTING),   # started
    (ChildState.BACKOFF, ChildState.STARTING),   # the delay is over
    (ChildState.FAILED, ChildState.STARTING),    # the cool-down is over
    (ChildState.STARTING, ChildState.RUNNING),   # it is up (a sensor: its loop ticked)
    (ChildState.STARTING, ChildState.BACKOFF),   # it ended, or hung: restart later
    (ChildState.RUNNING, ChildState.BACKOFF),
    (ChildState.STARTING, ChildState.FAILED),    # it ended too often: cool down, or give up
    (ChildState.RUNNING, ChildState.FAILED),
    (ChildState.STOPPED, ChildState.BACKOFF),    # its process could not even be started
    (ChildState.BACKOFF, ChildState.BACKOFF),
    (ChildState.FAILED, ChildState.BACKOFF),
    (ChildState.STARTING, ChildState.STOPPING),  # asked to stop, with a deadline
    (ChildState.RUNNING, ChildState.STOPPING),
    (ChildState.BACKOFF, ChildState.STOPPED),    # asked to stop while no process runs
    (ChildState.FAILED, ChildState.STOPPED),
    (ChildState.STOPPING, ChildState.STOPPED),   # it ended (by itself or killed at the deadline)
})
"""Every change of a child's state that may happen, and no other."""


SUPERVISOR_TRANSITIONS = frozenset({
    (SupervisorPhase.STARTING, SupervisorPhase.RUNNING),   # every child started
    (SupervisorPhase.STARTING, SupervisorPhase.STOPPING),  # a child gave up while starting
    (SupervisorPhase.RUNNING, SupervisorPhase.STOPPING),   # SIGTERM, SIGINT, or a child gave up
    (SupervisorPhase.STOPPING, SupervisorPhase.STOPPED),   # every child stopped, the listener last
})
"""Every change of the supervisor's phase that may happen."""

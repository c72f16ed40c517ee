"""Every supervised child: its process, its state and its restart policy.

The log listener, each sensor's worker and any later kind of child are one
kind of object, a ``ManagedChild``: a name, a ``RestartPolicy`` and a launch
function. The supervisor reaps, restarts, stops and publishes every child
alike; each change of state goes through ``change_state`` along
``states.CHILD_TRANSITIONS`` only, and each transition method first checks
the states it may come from.

A new kind of child (the MQTT publisher) needs two things:

1. a ``RestartPolicy``: how long to wait before a restart, when the child
   counts as failed, whether failing means a cool-down (sensors) or giving
   up, which stops the tree (the listener), and how long it may take to stop;
2. a launch function ``launch() -> Launched``: it starts the process (through
   the supervisor's launcher, so that the tree's signals stay blocked while
   it starts) and says how to ask it to stop.

``ManagedChild(name, policy, launch)`` is then added to the supervisor's
children; nothing else in the loop changes. ``ManagedSensor`` adds what only a
sensor has: a heartbeat in shared memory, which tells when it is up and when
it hangs.
"""

import collections
import dataclasses
import logging
import time
from typing import Any, Callable

from app.states import ALIVE, CHILD_TRANSITIONS, HAS_PROCESS, WAITING, ChildState
from app.worker_exit import describe_exit

logger = logging.getLogger(__name__)

STARTUP_GRACE = 15.0
"""Seconds a new worker may take to import, build its sensor and tick once."""

STARTUP_CHECK = 0.5
"""Seconds between looks at a starting worker's heartbeat: its first tick
makes it running, and only then can its next deadline be known."""

HANG_KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL for a hung worker."""


class TransitionError(RuntimeError):
    """A state change the child's state machine does not allow: a bug."""


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor restarts and stops one kind of child. Seconds.

    After an exit the child waits ``delay`` (``backoff_initial`` at first,
    doubling up to ``backoff_max``); a run of ``stable_after`` resets it
    (to 0 with ``at_once_after_stable``). More than ``max_restarts`` restarts
    within ``restart_window`` make it FAILED for ``failed_cooldown``;
    ``max_quick_exits`` exits in a row, each within ``stable_after`` of its
    start, make it FAILED for good: the child cannot start, and the
    supervisor stops the tree.
    """

    backoff_initial: float
    backoff_max: float
    stable_after: float
    stop_timeout: float
    max_restarts: int | None = None
    restart_window: float = 0.0
    failed_cooldown: float | None = None
    at_once_after_stable: bool = False
    max_quick_exits: int | None = None


def sensor_policy(settings):
    """A sensor's policy: the ``[supervisor]`` section as it is."""
    return RestartPolicy(
        backoff_initial=settings.backoff_initial, backoff_max=settings.backoff_max,
        stable_after=settings.stable_after, stop_timeout=settings.stop_timeout,
        max_restarts=settings.max_restarts, restart_window=settings.restart_window,
        failed_cooldown=settings.failed_cooldown,
    )


@dataclasses.dataclass
class Launched:
    """What a launch function returns: the started process, how to ask it to
    stop, what to release once it ended, and whether it is up yet."""

    process: Any
    ask_to_stop: Callable[[], None]
    release: Callable[[], None] = lambda: None
    is_up: Callable[[], bool] = lambda: True
    heartbeat: Any = None


class ManagedChild:
    """One supervised child: its process, its state and its restart policy.

    ``launch()`` starts a process and returns a ``Launched``; it may raise
    OSError (no memory, no pids). ``now`` is the monotonic clock, passed in
    so that tests can drive the policy without waiting.
    """

    def __init__(self, name, policy, launch, now=time.monotonic):
        self.name = name
        self.title = name
        """How messages name it: ``log listener``, ``sensor door``."""
        self.policy = policy
        self.launch = launch
        self._now = now
        self.state = ChildState.STOPPED
        self.launched = None
        self.restarts = 0
        self.recent_restarts = collections.deque()
        self.quick_exits = 0
        self.delay = policy.backoff_initial
        self.started_at = None
        self.next_start = None
        self.next_retry_wall = None
        self.stop_deadline = None
        self.killed_at_deadline = False
        self.last_exit = None
        self.last_pid = None
        self.was_cut_off = False
        self.changed = True

    @property
    def process(self):
        return self.launched.process if self.launched is not None else None

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    @property
    def sentinel(self):
        """The handle to wait on while a process of this child exists."""
        return self.process.sentinel if self.state in HAS_PROCESS else None

    @property
    def gave_up(self):
        """FAILED with no start planned: the child cannot start."""
        return self.state is ChildState.FAILED and self.next_start is None

    def change_state(self, new_state):
        """The one place a state changes; only along CHILD_TRANSITIONS."""
        if (self.state, new_state) not in CHILD_TRANSITIONS:
            raise TransitionError(f"{self.title}: {self.state.value} -> {new_state.value}")
        self.state = new_state
        self.changed = True

    def _expect(self, *states):
        if self.state not in states:
            raise TransitionError(f"{self.title}: is {self.state.value}, "
                                  f"expected {' or '.join(s.value for s in states)}")

    # -- starting ------------------------------------------------------

    def start(self):
        """Launch the process; False when it could not even be started."""
        self._expect(ChildState.STOPPED, *WAITING)
        try:
            launched = self.launch()
        except OSError as error:
            self.start_failed(error)
            return False
        self.attach_launched(launched)
        return True

    def attach_launched(self, launched):
        """The process has been started."""
        self._expect(ChildState.STOPPED, *WAITING)
        now = self._now()
        if self.state in WAITING:
            self.restarts += 1
            self.recent_restarts.append(now)
        self.launched = launched
        self.started_at = now
        self.next_start = self.next_retry_wall = None
        self.stop_deadline = None
        self.killed_at_deadline = False
        # STOPPED/BACKOFF/FAILED -> STARTING
        self.change_state(ChildState.STARTING)

    def start_failed(self, error):
        """The process could not even be started: try again like after an exit."""
        self._expect(ChildState.STOPPED, *WAITING)
        self.last_exit = f"could not start: {error}"
        self._plan_start(self.delay)
        self._grow_delay()
        # STOPPED/BACKOFF/FAILED -> BACKOFF
        self.change_state(ChildState.BACKOFF)

    def check_started(self):
        """Once the child is up."""
        if self.state is ChildState.STARTING and self.launched.is_up():
            # STARTING -> RUNNING
            self.change_state(ChildState.RUNNING)

    # -- ending while it should run ----------------------------------------

    def exited(self):
        """The child ended while it should run: plan its restart, or give up.

        BACKOFF normally; FAILED with a cool-down when restarting it again
        would make more than max_restarts restarts within restart_window;
        FAILED for good after max_quick_exits quick exits in a row.
        """
        self._expect(*ALIVE)
        now = self._now()
        self._ended(self.exit_description())
        if now - self.started_at >= self.policy.stable_after:
            self.quick_exits = 0
            self.delay = 0.0 if self.policy.at_once_after_stable else self.policy.backoff_initial
        else:
            self.quick_exits += 1
        while self.recent_restarts and now - self.recent_restarts[0] > self.policy.restart_window:
            self.recent_restarts.popleft()
        if self.policy.max_quick_exits is not None and self.quick_exits >= self.policy.max_quick_exits:
            self.next_start = self.next_retry_wall = None
            # STARTING/RUNNING -> FAILED, for good
            self.change_state(ChildState.FAILED)
        elif self.policy.max_restarts is not None and len(self.recent_restarts) >= self.policy.max_restarts:
            self.recent_restarts.clear()
            self.delay = self.policy.backoff_initial
            self._plan_start(self.policy.failed_cooldown)
            # STARTING/RUNNING -> FAILED, until the cool-down is over
            self.change_state(ChildState.FAILED)
        else:
            self._plan_start(self.delay)
            self._grow_delay()
            # STARTING/RUNNING -> BACKOFF
            self.change_state(ChildState.BACKOFF)

    @property
    def last_run_quick(self):
        return self.quick_exits > 0

    def exit_description(self):
        return describe_exit(self.process.exitcode)

    def cut_off(self):
        """The child was cut off from the supervisor (its fork server died)
        and has been killed: start again at once, since it did not fail."""
        self._expect(*ALIVE)
        self._ended("cut off: the fork server died")
        self.was_cut_off = True
        self._plan_start(0.0)
        # STARTING/RUNNING -> BACKOFF
        self.change_state(ChildState.BACKOFF)

    def restart_at_once(self):
        """Forget the backoff and start as soon as the loop comes round."""
        self._expect(*WAITING)
        self.quick_exits = 0
        self.delay = 0.0 if self.policy.at_once_after_stable else self.policy.backoff_initial
        self._plan_start(0.0)
        # BACKOFF/FAILED -> BACKOFF
        self.change_state(ChildState.BACKOFF)

    def start_due(self):
        """Whether a planned start is due now."""
        return self.state in WAITING and self.next_start is not None and self._now() >= self.next_start

    def _ended(self, how):
        self.process.join()
        self.last_exit = how
        self.last_pid = self.pid
        self.was_cut_off = False
        self.launched.release()

    def _plan_start(self, delay):
        self.next_start = self._now() + delay
        self.next_retry_wall = time.time() + delay

    def _grow_delay(self):
        self.delay = min(max(self.delay * 2, self.policy.backoff_initial), self.policy.backoff_max)

    # -- stopping ------------------------------------------------------

    def request_stop(self):
        """Ask the child to stop, with stop_timeout to do it; a child that
        has no process is stopped at once."""
        if self.state in ALIVE:
            self.launched.ask_to_stop()
            self.stop_deadline = self._now() + self.policy.stop_timeout
            # STARTING/RUNNING -> STOPPING
            self.change_state(ChildState.STOPPING)
        elif self.state in WAITING:
            self.next_start = self.next_retry_wall = None
            # BACKOFF/FAILED -> STOPPED
            self.change_state(ChildState.STOPPED)

    def stop_overdue(self):
        """Whether the stop deadline passed with the process still there:
        True once, when the caller should kill it."""
        if self.state is not ChildState.STOPPING or self.killed_at_deadline:
            return False
        return self._now() >= self.stop_deadline

    def kill_at_deadline(self):
        self._expect(ChildState.STOPPING)
        self.killed_at_deadline = True
        self.kill()

    def stopped(self):
        """The child ended after it was asked to."""
        self._expect(ChildState.STOPPING)
        self._ended(describe_exit(self.process.exitcode))
        self.stop_deadline = None
        # STOPPING -> STOPPED
        self.change_state(ChildState.STOPPED)

    def kill(self):
        if self.process is not None and self.process.is_alive():
            self.process.kill()

    # -- timers --------------------------------------------------------

    def next_deadline(self):
        """The next moment this child needs the supervisor's attention."""
        if self.state in WAITING:
            return self.next_start
        if self.state is ChildState.STOPPING:
            return None if self.killed_at_deadline else self.stop_deadline
        if self.state is ChildState.STARTING:
            return self._now() + STARTUP_CHECK
        return None

    def summary(self):
        """The child's entry in the state file."""
        return {
            "pid": self.pid if self.state in HAS_PROCESS else None,
            "state": self.state.value,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "next_retry": self.next_retry_wall,
        }


class ManagedSensor(ManagedChild):
    """A sensor's worker process and what the supervisor knows about it:
    its heartbeat tells when it is up (its loop ticked) and when it hangs."""

    def __init__(self, sensor, settings, now=time.monotonic, launch=None):
        super().__init__(sensor.name, sensor_policy(settings), launch or self._no_launcher, now)
        self.title = f"sensor {sensor.name}"
        self.sensor = sensor
        self.kill_at = None
        self.hung = False

    def _no_launcher(self):
        raise TransitionError(f"sensor {self.name}: built without a launch function")

    @property
    def heartbeat(self):
        return self.launched.heartbeat if self.launched is not None else None

    def attach(self, process, heartbeat, stop_sender):
        """The worker has been started with this heartbeat and stop pipe."""
        self.attach_launched(sensor_launched(process, heartbeat, stop_sender))

    def attach_launched(self, launched):
        super().attach_launched(launched)
        self.kill_at = None
        self.hung = False

    def exit_description(self):
        return "hung" if self.hung else super().exit_description()

    def hang_deadline(self):
        """When the worker is overdue if nothing changes: its read started
        read_timeout ago, or its loop has not ticked for a whole period."""
        beat = self.heartbeat
        if beat.read_started > beat.read_ended:
            return beat.read_started + self.sensor.read_timeout
        if beat.tick == 0:
            return self.started_at + STARTUP_GRACE + self.sensor.read_timeout
        return beat.tick + self.sensor.interval + self.sensor.read_timeout + 1.0

    def check_hung(self):
        """Alive and overdue: SIGTERM now, SIGKILL after a grace period."""
        if self.state not in ALIVE:
            return
        now = self._now()
        if self.kill_at is not None:
            if now >= self.kill_at:
                logger.error("sensor %s: still running %.0f s after SIGTERM; killing it", self.name, HANG_KILL_GRACE)
                self.kill()
                self.kill_at = float("inf")
            return
        if now < self.hang_deadline():
            return
        beat = self.heartbeat
        if beat.read_started > beat.read_ended:
            logger.error("sensor %s: read has not returned after %.1f s (read_timeout); terminating pid %d",
                         self.name, now - beat.read_started, self.pid)
        else:
            logger.error("sensor %s: no heartbeat for %.1f s; terminating pid %d",
                         self.name, now - max(beat.tick, self.started_at), self.pid)
        self.hung = True
        self.process.terminate()
        self.kill_at = now + HANG_KILL_GRACE

    def next_deadline(self):
        if self.state in ALIVE:
            if self.kill_at is not None:
                return self.kill_at
            if self.state is ChildState.STARTING:
                return min(self.hang_deadline(), self._now() + STARTUP_CHECK)
            return self.hang_deadline()
        return super().next_deadline()

    def summary(self):
        """The sensor's entry in the state file."""
        beat = self.heartbeat
        last_reading = None
        if beat is not None and beat.readings:
            last_reading = {"value": beat.last_value, "ts": beat.last_reading_time}
        return {
            "name": self.name,
            "type": self.sensor.type,
            **super().summary(),
            "last_reading": last_reading,
        }


def sensor_launched(process, heartbeat, stop_sender):
    """A started worker: asked to stop through its pipe, up once its loop ticked."""

    def ask_to_stop():
        try:
            stop_sender.send_bytes(b"stop")
        except OSError:
            pass

    return Launched(process, ask_to_stop, release=stop_sender.close,
                    is_up=lambda: bool(heartbeat.tick), heartbeat=heartbeat)

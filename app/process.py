"""One supervised sensor: its process, its state and its restart policy."""

import collections
import logging
import time

from app.states import SensorState
from app.worker_exit import describe_exit

logger = logging.getLogger(__name__)

STARTUP_GRACE = 15.0
"""Seconds a new worker may take to import, build its sensor and tick once."""

STARTUP_CHECK = 0.5
"""Seconds between looks at a starting worker's heartbeat: its first tick
makes it running, and only then can its next deadline be known."""

HANG_KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL for a hung worker."""


ALIVE = (SensorState.STARTING, SensorState.RUNNING)
"""The states in which the sensor's process runs and is expected to."""


class ManagedSensor:
    """A sensor's worker process and what the supervisor knows about it.

    Every state change goes through ``change_state`` so that the supervisor
    can tell when its status line and state file need writing.
    """

    def __init__(self, sensor, policy, now=time.monotonic):
        self.sensor = sensor
        self.policy = policy
        self._now = now
        self.state = SensorState.STOPPED
        self.process = None
        self.heartbeat = None
        self.stop_sender = None
        self.restarts = 0
        self.recent_restarts = collections.deque()
        self.delay = policy.backoff_initial
        self.started_at = None
        self.next_start = None
        self.next_retry_wall = None
        self.last_exit = None
        self.kill_at = None
        self.hung = False
        self.changed = True

    @property
    def name(self):
        return self.sensor.name

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    @property
    def sentinel(self):
        if self.process is None or self.state is SensorState.STOPPED:
            return None
        return self.process.sentinel

    def change_state(self, new_state):
        if new_state is not self.state:
            self.state = new_state
            self.changed = True

    def attach(self, process, heartbeat, stop_sender):
        """The worker has been started: STOPPED/BACKOFF/FAILED -> STARTING."""
        now = self._now()
        if self.state in (SensorState.BACKOFF, SensorState.FAILED):
            self.restarts += 1
            self.recent_restarts.append(now)
        self.process, self.heartbeat, self.stop_sender = process, heartbeat, stop_sender
        self.started_at = now
        self.next_start = self.next_retry_wall = None
        self.kill_at = None
        self.hung = False
        self.change_state(SensorState.STARTING)

    def check_started(self):
        """STARTING -> RUNNING once the worker's loop has ticked: its sensor
        is built and it reads on schedule."""
        if self.state is SensorState.STARTING and self.heartbeat.tick:
            self.change_state(SensorState.RUNNING)

    def exited(self):
        """The worker ended while it should run: plan its restart.

        STARTING/RUNNING -> BACKOFF normally; -> FAILED when restarting it
        again would make more than max_restarts restarts within
        restart_window.
        """
        now = self._now()
        self.process.join()
        self.last_exit = "hung" if self.hung else describe_exit(self.process.exitcode)
        self._close_pipes()
        if now - self.started_at >= self.policy.stable_after:
            self.delay = self.policy.backoff_initial
        while self.recent_restarts and now - self.recent_restarts[0] > self.policy.restart_window:
            self.recent_restarts.popleft()
        if len(self.recent_restarts) >= self.policy.max_restarts:
            self.recent_restarts.clear()
            self.delay = self.policy.backoff_initial
            self._plan_start(self.policy.failed_cooldown)
            self.change_state(SensorState.FAILED)
        else:
            self._plan_start(self.delay)
            self.delay = min(self.delay * 2, self.policy.backoff_max)
            self.change_state(SensorState.BACKOFF)

    def cut_off(self):
        """The worker was cut off from the supervisor (its fork server died)
        and has been killed: STARTING/RUNNING -> BACKOFF, to start again at
        once without a delay, since it did not fail itself."""
        self.process.join()
        self.last_exit = "cut off: the fork server died"
        self._close_pipes()
        self._plan_start(0.0)
        self.change_state(SensorState.BACKOFF)

    def start_failed(self):
        """The process could not even be started: STOPPED/BACKOFF/FAILED ->
        BACKOFF, to try again like after an exit."""
        self.last_exit = "could not start"
        self._plan_start(self.delay)
        self.delay = min(self.delay * 2, self.policy.backoff_max)
        self.change_state(SensorState.BACKOFF)

    def _plan_start(self, delay):
        self.next_start = self._now() + delay
        self.next_retry_wall = time.time() + delay

    def request_stop(self):
        """Ask the worker to stop: STARTING/RUNNING -> STOPPING;
        BACKOFF/FAILED -> STOPPED."""
        if self.state in ALIVE:
            try:
                self.stop_sender.send_bytes(b"stop")
            except OSError:
                pass
            self.change_state(SensorState.STOPPING)
        elif self.state in (SensorState.BACKOFF, SensorState.FAILED):
            self.next_start = self.next_retry_wall = None
            self.change_state(SensorState.STOPPED)

    def stopped(self):
        """The worker ended after it was asked to: STOPPING -> STOPPED."""
        self.process.join()
        self.last_exit = describe_exit(self.process.exitcode)
        self._close_pipes()
        self.change_state(SensorState.STOPPED)

    def kill(self):
        if self.process is not None and self.process.is_alive():
            self.process.kill()

    def _close_pipes(self):
        if self.stop_sender is not None:
            self.stop_sender.close()
            self.stop_sender = None

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
        """The next moment this sensor needs the supervisor's attention."""
        if self.state in (SensorState.BACKOFF, SensorState.FAILED):
            return self.next_start
        if self.state in ALIVE:
            if self.kill_at is not None:
                return self.kill_at
            if self.state is SensorState.STARTING:
                return min(self.hang_deadline(), self._now() + STARTUP_CHECK)
            return self.hang_deadline()
        return None

    def summary(self):
        """The sensor's entry in the state file."""
        beat = self.heartbeat
        last_reading = None
        if beat is not None and beat.readings:
            last_reading = {"value": beat.last_value, "ts": beat.last_reading_time}
        return {
            "name": self.name,
            "type": self.sensor.type,
            "pid": self.pid if self.state in (*ALIVE, SensorState.STOPPING) else None,
            "state": self.state.value,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_reading": last_reading,
            "next_retry": self.next_retry_wall,
        }

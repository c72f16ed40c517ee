"""One supervised sensor's state machine, driven by a hand-written process
stand-in and an injected clock."""

import dataclasses

import pytest

from app.config import SensorConfig, SupervisorSettings
from app.process import ManagedSensor, describe_exit
from app.states import SensorState


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class DummyProcess:
    """Stands in for multiprocessing.Process: it 'ends' with a given code."""

    def __init__(self, pid, exitcode=None):
        self.pid = pid
        self.exitcode = exitcode
        self.sentinel = pid
        self.terminated = self.killed = False

    def join(self, timeout=None):
        pass

    def is_alive(self):
        return self.exitcode is None

    def terminate(self):
        self.terminated = True

    def kill(self):
        self.killed = True


class DummyHeartbeat:
    tick = read_started = read_ended = 0.0
    readings = 0


class DummyPipe:
    def __init__(self):
        self.sent = []
        self.closed = False

    def send_bytes(self, data):
        self.sent.append(data)

    def close(self):
        self.closed = True


POLICY = SupervisorSettings(backoff_initial=1.0, backoff_max=8.0, stable_after=60.0, max_restarts=3,
                            restart_window=100.0, failed_cooldown=300.0)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def managed(clock):
    return ManagedSensor(SensorConfig(name="door", type="button", interval=1.0), POLICY, now=clock)


def start(managed, pid):
    """Start a worker and let its loop tick once."""
    managed.attach(DummyProcess(pid), DummyHeartbeat(), DummyPipe())
    managed.heartbeat.tick = managed._now()
    managed.check_started()


def crash(managed, clock, after, code=1):
    clock.now += after
    managed.process.exitcode = code
    managed.exited()
    return managed.next_start - clock.now


def test_stopped_to_starting_to_running_on_the_first_tick(managed, clock):
    managed.attach(DummyProcess(10), DummyHeartbeat(), DummyPipe())
    assert managed.state is SensorState.STARTING
    assert managed.summary()["pid"] == 10
    managed.check_started()
    assert managed.state is SensorState.STARTING
    managed.heartbeat.tick = clock.now
    managed.check_started()
    assert managed.state is SensorState.RUNNING
    assert managed.restarts == 0


def test_starting_is_watched_until_it_runs(managed, clock):
    managed.attach(DummyProcess(10), DummyHeartbeat(), DummyPipe())
    assert managed.next_deadline() == clock.now + 0.5
    managed.heartbeat.tick = clock.now
    assert managed.next_deadline() == clock.now + 0.5
    managed.check_started()
    assert managed.next_deadline() == clock.now + 1.0 + 10.0 + 1.0


def test_cut_off_restarts_at_once_without_backoff(managed, clock):
    start(managed, 10)
    managed.process.exitcode = 255
    managed.cut_off()
    assert managed.state is SensorState.BACKOFF
    assert managed.next_start == clock.now
    assert managed.delay == POLICY.backoff_initial
    assert managed.last_exit == "cut off: the fork server died"


def crash_and_restart(managed, clock, times):
    """Crash the running worker ``times`` times, each restarted when due;
    return the restart delays."""
    delays = []
    for _ in range(times):
        delays.append(crash(managed, clock, after=0.1))
        assert managed.state is SensorState.BACKOFF
        clock.now = managed.next_start
        start(managed, managed.pid + 1)
    return delays


def test_running_to_backoff_with_doubling_delays_capped(clock):
    policy = dataclasses.replace(POLICY, max_restarts=10)  # room to reach the cap before failed
    managed = ManagedSensor(SensorConfig(name="door", type="button", interval=1.0), policy, now=clock)
    start(managed, 10)
    assert crash_and_restart(managed, clock, 6) == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert managed.restarts == 6


def test_backoff_to_failed_after_burst(managed, clock):
    start(managed, 10)
    crash_and_restart(managed, clock, 3)
    assert crash(managed, clock, after=0.1) == 300.0
    assert managed.state is SensorState.FAILED
    assert managed.summary()["state"] == "failed"


def test_failed_to_running_after_cooldown_starts_a_fresh_window(managed, clock):
    start(managed, 10)
    crash_and_restart(managed, clock, 3)
    crash(managed, clock, after=0.1)
    clock.now = managed.next_start
    start(managed, 20)
    assert managed.state is SensorState.RUNNING
    assert crash(managed, clock, after=0.1) == 1.0
    assert managed.state is SensorState.BACKOFF


def test_stable_run_resets_the_backoff(managed, clock):
    start(managed, 10)
    crash(managed, clock, after=0.1)
    clock.now = managed.next_start
    start(managed, 11)
    assert crash(managed, clock, after=0.1) == 2.0
    clock.now = managed.next_start
    start(managed, 12)
    assert crash(managed, clock, after=61.0) == 1.0


def test_restarts_outside_the_window_do_not_count(managed, clock):
    start(managed, 10)
    for pid in range(11, 20):
        crash(managed, clock, after=61.0)
        clock.now = managed.next_start
        start(managed, pid)
        clock.now += 50
    assert managed.state is SensorState.RUNNING


def test_running_to_stopping_to_stopped(managed):
    pipe = DummyPipe()
    managed.attach(DummyProcess(10), DummyHeartbeat(), pipe)
    managed.request_stop()
    assert managed.state is SensorState.STOPPING
    assert pipe.sent == [b"stop"]
    managed.process.exitcode = 0
    managed.stopped()
    assert managed.state is SensorState.STOPPED
    assert pipe.closed


def test_backoff_to_stopped_cancels_the_restart(managed, clock):
    start(managed, 10)
    crash(managed, clock, after=0.1)
    managed.request_stop()
    assert managed.state is SensorState.STOPPED
    assert managed.next_deadline() is None


def test_hung_read_is_terminated_then_killed(managed, clock):
    start(managed, 10)
    managed.heartbeat.tick = clock.now
    managed.heartbeat.read_started = clock.now + 0.5
    clock.now += 0.5 + 9.9
    managed.check_hung()
    assert not managed.process.terminated
    clock.now += 0.2
    managed.check_hung()
    assert managed.process.terminated and not managed.process.killed
    clock.now += 2.1
    managed.check_hung()
    assert managed.process.killed
    managed.process.exitcode = -9
    managed.exited()
    assert managed.last_exit == "hung"


def test_sleeping_worker_is_not_hung(managed, clock):
    start(managed, 10)
    managed.heartbeat.tick = clock.now
    managed.heartbeat.read_started = managed.heartbeat.read_ended = clock.now
    clock.now += 1.0 + 10.0
    managed.check_hung()
    assert not managed.process.terminated


@pytest.mark.parametrize("code, text", [
    (0, "stopped (exit 0)"), (1, "crashed (exit 1)"), (3, "could not be built (exit 3)"),
    (4, "too many failed reads (exit 4)"), (5, "orphaned: the supervisor died during a read (exit 5)"),
    (2, "exit status 2"), (255, "exit status 255"), (-9, "signal SIGKILL"), (-15, "signal SIGTERM"),
    (None, "still running")])
def test_describe_exit_says_what_a_worker_exit_means(code, text):
    assert describe_exit(code) == text


def test_describe_exit_of_a_hung_worker_names_read_timeout():
    assert describe_exit(-9, hung=True) == "hung in read(): killed after read_timeout"

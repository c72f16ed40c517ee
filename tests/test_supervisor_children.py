"""The supervisor's loop in-process: a fake clock, no systemd, and a
launcher whose processes are hand-written stand-ins, so that the restart
policy of each child is driven without waiting and without processes."""

import json

import pytest

from app.config import load_config
from app.process import TransitionError
from app.worker_exit import describe_exit
from app.states import CHILD_TRANSITIONS, ChildState, SupervisorPhase
from app.supervisor import LISTENER_MAX_QUICK_DEATHS, Supervisor
from test_process import Clock, DummyHeartbeat, DummyPipe, DummyProcess


class FakeLauncher:
    """Starts nothing: each ``start`` returns a DummyProcess with the next pid."""

    def __init__(self):
        self.started = []
        self.stop_senders = []
        self.next_pid = 100

    def start(self, target, name, args=(), kwargs=None):
        process = DummyProcess(self.next_pid)
        process.name = name
        self.next_pid += 1
        self.started.append(process)
        return process

    def pipe(self):
        self.stop_senders.append(DummyPipe())
        return DummyPipe(), self.stop_senders[-1]

    def heartbeat(self, previous=None):
        return DummyHeartbeat()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def supervisor(tmp_path, clock):
    (tmp_path / "edgesense.toml").write_text(
        '[logging]\ndir = "logs"\nconsole = false\n'
        '[supervisor]\nstart_method = "fork"\nbackoff_max = 4\nstop_timeout = 20\n'
        '[[sensor]]\nname = "door"\ntype = "load_average"\ninterval = 1\n'
    )
    config = load_config(tmp_path / "edgesense.toml")
    tree = Supervisor(config, environ={}, now=clock, launcher=FakeLauncher(),
                      configure_logging=lambda sender, level: None)
    tree.start()
    yield tree
    tree.transport.close()


def end(child, code=-9):
    child.process.exitcode = code


def state_file(tree):
    return json.loads(tree.config.supervisor.state_file.read_text())


def test_starting_to_running_with_the_listener_and_sensor_in_the_state_file(supervisor):
    door = supervisor.sensors["door"]
    assert supervisor.phase is SupervisorPhase.RUNNING
    assert supervisor.listener.state is ChildState.RUNNING
    assert door.state is ChildState.STARTING
    door.heartbeat.tick = 1.0
    supervisor.advance()
    assert door.state is ChildState.RUNNING
    state = state_file(supervisor)
    assert state["supervisor"]["state"] == "running"
    assert state["listener"] == {"pid": 100, "state": "running", "restarts": 0, "last_exit": None,
                                 "next_retry": None}
    assert state["sensors"][0]["state"] == "running"


def test_listener_running_to_backoff_restarts_at_once_after_a_stable_run(supervisor, clock, capsys):
    listener = supervisor.listener
    clock.now += 5.0
    end(listener)
    supervisor.advance()
    assert listener.state is ChildState.RUNNING
    assert (listener.pid, listener.restarts, listener.last_exit) == (102, 1, "signal SIGKILL")
    assert capsys.readouterr().err == ("edgesense: log listener (pid 100) ended with signal SIGKILL; "
                                       "restarting it on the same socket in 0.0 s\n")


def test_listener_backoff_doubles_after_each_quick_death_up_to_backoff_max(supervisor, clock):
    listener = supervisor.listener
    delays = []
    for _ in range(LISTENER_MAX_QUICK_DEATHS - 1):
        clock.now += 0.1
        end(listener, 1)
        supervisor.advance()
        assert listener.state is ChildState.BACKOFF
        delays.append(listener.next_start - clock.now)
        clock.now = listener.next_start
        supervisor.advance()
        assert listener.state is ChildState.RUNNING
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert listener.restarts == LISTENER_MAX_QUICK_DEATHS - 1
    assert supervisor.phase is SupervisorPhase.RUNNING


def test_listener_backoff_resets_after_a_stable_run(supervisor, clock):
    listener = supervisor.listener
    clock.now += 0.1
    end(listener, 1)
    supervisor.advance()
    clock.now = listener.next_start
    supervisor.advance()
    clock.now += 1.0
    end(listener, 1)
    supervisor.advance()
    assert listener.state is ChildState.RUNNING
    assert listener.quick_exits == 0


def test_listener_backoff_to_failed_after_quick_deaths_stops_the_tree(supervisor, clock, capsys):
    listener, door = supervisor.listener, supervisor.sensors["door"]
    for _ in range(LISTENER_MAX_QUICK_DEATHS):
        clock.now += 0.1
        end(listener, 1)
        supervisor.advance()
        if listener.state is ChildState.BACKOFF:
            clock.now = listener.next_start
            supervisor.advance()
    assert listener.state is ChildState.FAILED and listener.gave_up
    assert supervisor.phase is SupervisorPhase.STOPPING
    assert supervisor.exit_status == 1
    assert door.state is ChildState.STOPPING
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"edgesense: log listener cannot start: it ended within 1 s of its start "
                       f"{LISTENER_MAX_QUICK_DEATHS} times in a row (last: {describe_exit(1)}); "
                       "edgesense stops with exit status 1")
    assert len([line for line in err if "cannot start" in line]) == 1
    end(door, 0)
    supervisor.advance()
    assert door.state is ChildState.STOPPED
    assert listener.state is ChildState.FAILED
    assert supervisor.phase is SupervisorPhase.STOPPED
    assert state_file(supervisor)["listener"]["state"] == "failed"
    assert supervisor.launcher.stop_senders[0].sent == [b"stop"]


def test_sensor_stopping_to_stopped_after_the_kill_at_its_deadline(supervisor, clock):
    door = supervisor.sensors["door"]
    supervisor.begin_stop("stopping on SIGTERM")
    assert door.state is ChildState.STOPPING
    clock.now += 19.9
    supervisor.advance()
    assert not door.process.killed
    assert supervisor.listener.state is ChildState.RUNNING
    clock.now += 0.2
    supervisor.advance()
    assert door.process.killed and door.state is ChildState.STOPPING
    end(door)
    supervisor.advance()
    assert door.state is ChildState.STOPPED
    assert supervisor.listener.state is ChildState.STOPPING
    end(supervisor.listener, 0)
    supervisor.advance()
    assert supervisor.phase is SupervisorPhase.STOPPED
    assert state_file(supervisor)["listener"]["state"] == "stopped"


def test_a_sensor_crash_while_another_stops_is_restarted_on_time(supervisor, clock, tmp_path):
    config_path = tmp_path / "edgesense.toml"
    config_path.write_text(config_path.read_text().replace(
        "interval = 1\n", 'interval = 1\n[[sensor]]\nname = "disk"\ntype = "disk_usage"\ninterval = 1\n'))
    supervisor._reload()
    disk = supervisor.sensors["disk"]
    disk.heartbeat.tick = 1.0
    config_path.write_text(config_path.read_text().replace('name = "door"', 'name = "window"'))
    supervisor._reload()
    door = supervisor.retiring[0]
    assert door.state is ChildState.STOPPING
    clock.now += 2.0
    end(disk)
    supervisor.advance()
    assert disk.state is ChildState.BACKOFF
    clock.now = disk.next_start
    supervisor.advance()
    assert disk.state is ChildState.STARTING and disk.restarts == 1
    assert door.state is ChildState.STOPPING
    assert [s["name"] for s in state_file(supervisor)["sensors"]] == ["window", "disk", "door"]


def test_a_transition_from_a_state_it_may_not_come_from_is_refused(supervisor):
    door = supervisor.sensors["door"]
    with pytest.raises(TransitionError, match="sensor door: is starting, expected stopping"):
        door.stopped()
    with pytest.raises(TransitionError, match="sensor door: starting -> stopped"):
        door.change_state(ChildState.STOPPED)
    assert door.state is ChildState.STARTING


def test_every_transition_is_listed_and_every_listed_one_is_between_states():
    assert (ChildState.STOPPED, ChildState.BACKOFF) in CHILD_TRANSITIONS
    assert (ChildState.BACKOFF, ChildState.STOPPED) in CHILD_TRANSITIONS
    assert (ChildState.FAILED, ChildState.STOPPED) in CHILD_TRANSITIONS
    assert (ChildState.STOPPED, ChildState.RUNNING) not in CHILD_TRANSITIONS
    assert all(isinstance(a, ChildState) and isinstance(b, ChildState) for a, b in CHILD_TRANSITIONS)


def test_listener_stopping_for_new_logging_then_a_stop_drains_through_the_next_one(supervisor, tmp_path):
    config_path = tmp_path / "edgesense.toml"
    config_path.write_text(config_path.read_text().replace("console = false", "console = false\ncompress = false"))
    listener, door = supervisor.listener, supervisor.sensors["door"]
    supervisor._reload()
    assert listener.state is ChildState.STOPPING
    assert door.state is ChildState.STARTING
    supervisor.begin_stop("stopping on SIGTERM")
    end(door, 0)
    supervisor.advance()
    assert door.state is ChildState.STOPPED
    end(listener, 0)
    supervisor.advance()
    assert listener.pid == 102 and listener.state is ChildState.STOPPING
    assert supervisor.launcher.started[-1].name == "log-listener"
    assert supervisor.phase is SupervisorPhase.STOPPING
    end(listener, 0)
    supervisor.advance()
    assert supervisor.phase is SupervisorPhase.STOPPED
    assert listener.restarts == 0

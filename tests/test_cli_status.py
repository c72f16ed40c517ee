"""``edgesense status`` on a running tree, a stopped one and no state file,
run in-process. The state file is written here as the supervisor writes it;
a live pid (this test's own) stands for a running supervisor."""

import datetime
import json
import os
import subprocess
import sys
import time

import pytest

from app.statusview import latest_readings
from app.treelock import TreeLock
from helpers import edgesense_in_process

ONE_SENSOR = '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 10\n'


def dead_pid():
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def state(supervisor_pid, now):
    """Ages and delays carry 0.9 s of slack for a command whose clock is not fixed."""
    return {
        "supervisor": {"pid": supervisor_pid, "started": now - 3725},
        "listener": {"pid": 4242, "restarts": 1},
        "sensors": [
            {"name": "door", "type": "button", "pid": 4250, "state": "running", "restarts": 0,
             "last_exit": None, "last_reading": {"value": 1, "ts": now - 3}, "next_retry": None},
            {"name": "temperature", "type": "cpu_temperature", "pid": None, "state": "backoff",
             "restarts": 3, "last_exit": 1, "last_reading": {"value": 48.3, "ts": now - 125},
             "next_retry": now + 8.9},
            {"name": "tank", "type": "analog", "pid": None, "state": "failed", "restarts": 6,
             "last_exit": "SIGKILL", "last_reading": None, "next_retry": now + 290.9},
        ],
    }


def write_config(tmp_path, state_content=None):
    (tmp_path / "edgesense.toml").write_text(
        '[supervisor]\nstate_file = "run/state.json"\n' + ONE_SENSOR)
    state_file = tmp_path / "run" / "state.json"
    if state_content is not None:
        state_file.parent.mkdir()
        state_file.write_text(json.dumps(state_content))
    return state_file


def test_running_tree_one_line_per_sensor(tmp_path):
    now = time.time()
    write_config(tmp_path, state(os.getpid(), now))

    result = edgesense_in_process("status", cwd=tmp_path, now=now + 0.5)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (f"edgesense is running: supervisor pid {os.getpid()}, up 1 h 02 min; "
                        "log listener pid 4242, restarted 1 times")
    assert lines[1].split() == ["SENSOR", "TYPE", "STATE", "PID", "RESTARTS", "LAST", "EXIT",
                                "LAST", "READING", "NEXT", "RETRY"]
    assert lines[2].split() == ["door", "button", "running", "4250", "0", "-", "1", "(3", "s",
                                "ago)", "-"]
    assert lines[3].split() == ["temperature", "cpu_temperature", "backoff", "-", "3", "1",
                                "48.3", "(2", "min", "05", "s", "ago)", "in", "8", "s"]
    assert lines[4].split() == ["tank", "analog", "failed", "-", "6", "SIGKILL", "-", "in", "4",
                                "min", "50", "s"]
    assert len(lines) == 5


def test_the_supervisor_phase_and_listener_state_in_a_sensor_s_words(tmp_path):
    document = state(os.getpid(), time.time())
    document["supervisor"]["state"] = "stopping"
    document["listener"] = {"pid": None, "state": "backoff", "restarts": 2, "last_exit": "exit status 1",
                            "next_retry": time.time() + 1}
    write_config(tmp_path, document)

    result = edgesense_in_process("status", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"edgesense is stopping: supervisor pid {os.getpid()}, up 1 h 02 min; "
        "log listener backoff, no pid, restarted 2 times")


def test_running_tree_says_how_old_the_state_file_is(tmp_path):
    now = time.time()
    document = state(os.getpid(), now)
    document["supervisor"]["updated"] = now - 12
    write_config(tmp_path, document)

    result = edgesense_in_process("status", cwd=tmp_path, now=now + 60)

    assert result.stdout.splitlines()[0] == (
        f"edgesense is running: supervisor pid {os.getpid()}, up 1 h 03 min; "
        "log listener pid 4242, restarted 1 times (state written 1 min 12 s ago)")


def test_stopped_tree_says_not_running_and_shows_the_last_state(tmp_path):
    pid = dead_pid()
    write_config(tmp_path, state(pid, time.time()))

    result = edgesense_in_process("status", cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"edgesense is not running (supervisor pid {pid} is gone); last known state:"
    assert [text.split()[0] for text in lines[2:]] == ["door", "temperature", "tank"]


def test_cleanly_stopped_tree_says_not_running(tmp_path):
    document = state(os.getpid(), time.time())
    document["supervisor"]["state"] = "stopped"
    write_config(tmp_path, document)

    result = edgesense_in_process("status", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "edgesense is not running (it stopped); last known state:"


def test_missing_state_file_says_not_running(tmp_path):
    state_file = write_config(tmp_path)

    result = edgesense_in_process("status", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"edgesense is not running: no state file at {state_file}\n"


def test_without_config_status_reads_the_demo_state_file(tmp_path):
    result = edgesense_in_process("status", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr == ("edgesense is not running: no state file at "
                             f"{tmp_path / 'edgesense-logs' / 'edgesense.state.json'}\n")


def test_json_prints_the_state_file(tmp_path):
    state_file = write_config(tmp_path, state(os.getpid(), time.time()))

    result = edgesense_in_process("status", "--json", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout == state_file.read_text() + "\n"


def test_corrupt_state_file_is_one_line(tmp_path):
    state_file = write_config(tmp_path, state(os.getpid(), time.time()))
    state_file.write_text('{"supervisor": ')

    result = edgesense_in_process("status", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith(f"{state_file}: not a state file (invalid JSON: ")
    assert len(result.stderr.splitlines()) == 1


def test_status_reads_only_the_paths_of_the_config(tmp_path):
    """A custom type that imports only under the service's PYTHONPATH and a
    sensor section being edited do not stop `status`."""
    write_config(tmp_path, state(os.getpid(), time.time()))
    (tmp_path / "edgesense.toml").write_text(
        '[supervisor]\nstate_file = "run/state.json"\n' + ONE_SENSOR
        + '[[sensor]]\nname = "tank"\ntype = "site_sensors.tank:Level"\nintreval = "x"\n')

    result = edgesense_in_process("status", cwd=tmp_path)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"edgesense is running: supervisor pid {os.getpid()}")
    logs = edgesense_in_process("logs", cwd=tmp_path)
    assert (logs.returncode, logs.stderr) == (1, f"edgesense: no log folder at {tmp_path / 'edgesense-logs'} "
                                                 "(edgesense has not run with this config yet)\n")


def test_status_reports_a_bad_state_file_key_in_one_line(tmp_path):
    (tmp_path / "edgesense.toml").write_text('[supervisor]\nstate_file = 3\n' + ONE_SENSOR)

    result = edgesense_in_process("status", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"{tmp_path / 'edgesense.toml'}: supervisor.state_file: 3 is an integer; "
                             "expected a string\n")


def test_state_file_that_is_not_utf8_is_one_line(tmp_path):
    state_file = write_config(tmp_path, state(os.getpid(), time.time()))
    state_file.write_bytes(b'{"supervisor": {"pid": 1}, "x": "\xff\xfe"}')

    result = edgesense_in_process("status", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"{state_file}: not a state file (not UTF-8 text at byte 33)\n"


def test_state_file_with_a_huge_pid_is_one_line(tmp_path):
    document = state(99999999999999999999, time.time())
    state_file = write_config(tmp_path, document)

    result = edgesense_in_process("status", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"{state_file}: not a state file "
                             "(supervisor pid 99999999999999999999 is not a process id)\n")


def reading_line(name, value, stamp):
    moment = datetime.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="milliseconds")
    return json.dumps({"ts": moment, "sensor": name, "type": "t", "value": value, "unit": ""}) + "\n"


def test_last_reading_comes_from_readings_jsonl_when_newer(tmp_path):
    """The state file is refreshed every few seconds; a fast sensor's last
    reading is in readings.jsonl. An older line there does not win."""
    now = time.time()
    write_config(tmp_path, state(os.getpid(), now))
    logs = tmp_path / "edgesense-logs"
    logs.mkdir()
    (logs / "readings.jsonl").write_text(
        reading_line("door", 0, now - 0.2) + "not json\n" + reading_line("temperature", 40.0, now - 500)
        + reading_line("door", 7, now - 400))

    result = edgesense_in_process("status", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].split() == ["door", "button", "running", "4250", "0", "-", "0", "(0", "s",
                                "ago)", "-"]
    assert lines[3].split()[6:12] == ["48.3", "(2", "min", "05", "s", "ago)"]


def test_latest_readings_reads_only_the_tail(tmp_path):
    now = time.time()
    early = reading_line("early", 1, now - 10)
    (tmp_path / "readings.jsonl").write_text(
        early + reading_line("door", 1, now - 5) * 2000 + reading_line("door", 2, now - 1))

    latest = latest_readings(tmp_path, tail_bytes=4096)

    assert list(latest) == ["door"]
    assert latest["door"]["value"] == 2
    assert latest["door"]["ts"] == pytest.approx(now - 1, abs=0.01)
    assert latest_readings(tmp_path / "missing") == {}


def test_a_reused_pid_without_the_lock_held_is_not_running(tmp_path):
    state_file = write_config(tmp_path, state(os.getpid(), time.time()))
    (tmp_path / "run" / "state.json.lock").write_text('{"pid": 1, "since": 0}\n')

    result = edgesense_in_process("status", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (f"edgesense is not running (supervisor pid {os.getpid()} is gone); "
                                             "last known state:")
    assert state_file.exists()


def test_the_lock_held_is_a_running_tree(tmp_path):
    write_config(tmp_path, state(os.getpid(), time.time()))
    with TreeLock(tmp_path / "run" / "state.json.lock"):
        result = edgesense_in_process("status", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"edgesense is running: supervisor pid {os.getpid()}, up 1 h 02 min")

"""The supervisor with real processes and real signals, under each start method."""

import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.fork_server_name import is_the_fork_server
from helpers import edgesense_command, edgesense_environment, wait_for
from running_tree import RunningTree, session_pids


def sensor(name, kind, **keys):
    """A [[sensor]] section of the sensorkit type ``kind``."""
    lines = [f'name = "{name}"', f'type = "sensorkit:{kind}"', *(f"{key} = {value}" for key, value in keys.items())]
    return "\n[[sensor]]\n" + "\n".join(lines) + "\n"


def counter(name, interval=0.2):
    """A [[sensor]] section of a sensor that reads 0, 1, 2, ..."""
    return sensor(name, "Counter", interval=interval)


COUNTERS = counter("alpha") + counter("beta")


@pytest.fixture
def make_tree(tmp_path, start_method):
    trees = []

    def make(sensors, supervisor="", **kwargs):
        tree = RunningTree(tmp_path, start_method, sensors, supervisor, **kwargs)
        trees.append(tree)
        return tree

    yield make
    for tree in trees:
        tree.close()


def contiguous(values):
    return values == list(range(values[0], values[0] + len(values))) if values else True


def log_time(line):
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_sigkill_worker_is_back_within_the_first_backoff(make_tree):
    tree = make_tree(COUNTERS, "backoff_initial = 0.5\n").start()
    alpha, beta = tree.wait_running("alpha", "beta")
    tree.wait_readings("alpha", 2)
    os.kill(alpha["pid"], signal.SIGKILL)
    restarted = wait_for(
        lambda: (s := tree.sensor_state("alpha")) and s["state"] == "running" and s["pid"] != alpha["pid"] and s,
        10, what="alpha restarted",
    )
    before = len(tree.readings("alpha"))
    tree.wait_readings("alpha", before + 1)
    assert restarted["restarts"] == 1
    assert restarted["last_exit"] == "signal SIGKILL"
    assert tree.sensor_state("beta")["pid"] == beta["pid"]
    restart_line = f"sensor alpha: restarted as pid {restarted['pid']} (restart 1)"
    (started,) = wait_for(lambda: tree.log_lines(restart_line), 5, what="restart line")
    (ended,) = tree.log_lines("sensor alpha: ended with signal SIGKILL; restart in 0.5 s")
    assert 0.45 <= log_time(started) - log_time(ended) < 0.5 + 5.0
    assert tree.log_lines("sensor beta: ended") == []


def test_crash_on_every_start_backs_off_then_fails(make_tree):
    tree = make_tree(
        sensor("broken", "CrashOnBuild", interval=1) + counter("steady", interval=0.1),
        """
        backoff_initial = 0.2
        backoff_max = 0.8
        max_restarts = 4
        restart_window = 120
        failed_cooldown = 300
        """,
    ).start()
    wait_for(lambda: (s := tree.sensor_state("broken")) and s["state"] == "failed", 30, what="broken failed")
    failed = tree.sensor_state("broken")
    assert failed["restarts"] == 4
    assert failed["last_exit"] == "could not be built (exit 3)"
    assert failed["next_retry"] > time.time() + 200
    planned = [float(m) for m in re.findall(r"sensor broken: ended with could not be built \(exit 3\); restart in ([\d.]+) s", tree.log_text())]
    assert planned == pytest.approx([0.2, 0.4, 0.8, 0.8], abs=0.06)
    assert len(tree.log_lines("sensor broken: ended with could not be built (exit 3)")) == 5
    assert len(tree.log_lines("marked failed, retry in 300 s")) == 1
    steady = [r["value"] for r in tree.readings("steady")]
    assert len(steady) >= 5 and contiguous(steady)
    assert tree.sensor_state("steady")["restarts"] == 0


def test_hung_read_is_killed_and_restarted(make_tree):
    tree = make_tree(
        sensor("stuck", "Hang", interval=0.2, read_timeout=1.0),
        "backoff_initial = 0.2\n",
    ).start()
    first = tree.wait_running("stuck")[0]
    restarted = wait_for(
        lambda: (s := tree.sensor_state("stuck")) and s["restarts"] >= 1 and s["state"] == "running" and s,
        15, what="stuck restarted",
    )
    assert restarted["pid"] != first["pid"]
    assert restarted["last_exit"] == "hung in read(): killed after read_timeout"
    wait_for(lambda: tree.log_lines("sensor stuck: restarted as pid"), 5, what="restart line")
    assert len(tree.log_lines("sensor stuck: read has not returned after")) >= 1
    assert tree.log_lines("sensor stuck: ended with hung") != []


def test_sigkill_listener_loses_at_most_the_record_it_held(make_tree):
    tree = make_tree(
        counter("steady", interval=0.02)
    ).start()
    tree.wait_readings("steady", 10)
    listener = tree.state()["listener"]["pid"]
    os.kill(listener, signal.SIGKILL)
    wait_for(lambda: (s := tree.state()) and s["listener"]["pid"] not in (None, listener), 5, what="new listener")
    count = len(tree.readings("steady"))
    tree.wait_readings("steady", count + 20)
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit() == 0
    values = [r["value"] for r in tree.readings("steady")]
    missing = set(range(values[0], values[-1] + 1)) - set(values)
    assert len(values) == len(set(values))
    assert len(missing) <= 1
    assert f"log listener (pid {listener}) ended with signal SIGKILL" in tree.stderr_text()
    assert len(tree.log_lines(f"log listener (pid {listener}) ended with signal SIGKILL; restarted as pid")) == 1


@pytest.mark.parametrize("how", ["sigterm", "sigint_to_group", "sigterm_to_group"])
def test_stop_during_a_burst_keeps_every_record_once(make_tree, how):
    tree = make_tree(
        sensor("burst1", "Burst", interval=0.05, records=200)
        + sensor("burst2", "Burst", interval=0.05, records=200)
    ).start()
    tree.wait_readings("burst1", 3)
    tree.wait_readings("burst2", 3)
    if how == "sigterm":
        tree.signal(signal.SIGTERM)
    elif how == "sigint_to_group":
        tree.signal_group(signal.SIGINT)
    else:
        tree.signal_group(signal.SIGTERM)
    assert tree.wait_exit() == 0
    assert tree.leftovers() == []
    lines = tree.log_lines()
    for name in ("burst1", "burst2"):
        numbers = [int(m.group(1)) for line in lines if f"sensor:{name}" in line
                   for m in [re.search(r"burst seq=(\d+)$", line)] if m]
        assert numbers == list(range(len(numbers)))
        assert len(numbers) >= 600
    assert lines[-1].endswith("edgesense stopped")
    assert len(tree.log_lines("edgesense stopped")) == 1
    assert tree.log_lines("ended with") == []
    assert len(tree.log_lines("log listener started")) == 1


def test_sigkill_supervisor_takes_the_whole_tree_down(make_tree):
    tree = make_tree(COUNTERS + sensor("stuck", "Hang", interval=0.1, good_reads=0, read_timeout=60)).start()
    tree.wait_running("alpha", "beta", "stuck")
    assert len(tree.leftovers()) >= 5
    tree.process.kill()
    tree.process.wait(5)
    wait_for(lambda: tree.leftovers() == [], 10, what="every process of the tree gone")


def test_sighup_applies_added_removed_changed_and_keeps_unchanged(make_tree):
    tree = make_tree(COUNTERS + counter("gamma")).start()
    alpha, beta, gamma = tree.wait_running("alpha", "beta", "gamma")
    tree.write_config(counter("alpha") + counter("beta", interval=0.3) + counter("delta"))
    tree.signal(signal.SIGHUP)
    wait_for(lambda: tree.log_lines("reloaded: added delta; removed gamma; restarted beta; unchanged 1"), 15,
             what="reload line")
    new_alpha, new_beta, delta = tree.wait_running("alpha", "beta", "delta")
    assert new_alpha["pid"] == alpha["pid"]
    assert new_beta["pid"] != beta["pid"]
    assert [s["name"] for s in tree.state()["sensors"]] == ["alpha", "beta", "delta"]
    tree.wait_readings("delta", 1)

    tree.config_path.write_text(tree.config_path.read_text() + "\n[[sensor]]\nname = \n")
    tree.signal(signal.SIGHUP)
    wait_for(lambda: tree.log_lines("reload failed; the running configuration stays in force"), 10, what="reload error")
    assert [s["pid"] for s in tree.state()["sensors"]] == [new_alpha["pid"], new_beta["pid"], delta["pid"]]
    assert tree.process.poll() is None


def test_systemd_notify_ready_status_watchdog_stopping(make_tree, tmp_path):
    address = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(address)
    notify.settimeout(10)
    tree = make_tree(COUNTERS, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}).start()
    messages = []

    def receive_until(predicate):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = notify.recv(4096).decode()
            messages.append((time.monotonic(), message))
            if predicate(message):
                return
        raise AssertionError(f"not received; got {messages}")

    receive_until(lambda m: m == "READY=1")
    ready_at = messages[-1][0]
    receive_until(lambda m: m.startswith("STATUS=2/2 sensors running"))  # spawn may take a while
    receive_until(lambda m: False if time.monotonic() - ready_at < 1.0 else True)
    tree.signal(signal.SIGTERM)
    receive_until(lambda m: m == "STOPPING=1")
    assert tree.wait_exit() == 0
    texts = [m for _, m in messages]
    assert texts.index("READY=1") < texts.index("STOPPING=1")
    assert any(t.startswith("STATUS=2/2 sensors running") for t in texts)
    pings = [at for at, m in messages if m == "WATCHDOG=1" and at > ready_at]
    assert len(pings) >= 4
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 0.6
    notify.close()


def test_state_file_follows_the_tree(make_tree):
    tree = make_tree(COUNTERS).start()
    alpha, beta = tree.wait_running("alpha", "beta")
    state = tree.state()
    assert state["supervisor"]["pid"] == tree.pid
    listener = state["listener"]["pid"]
    assert state["listener"] == {"pid": listener, "state": "running", "restarts": 0,
                                 "last_exit": None, "next_retry": None}
    assert state["supervisor"]["state"] == "running"
    assert listener not in (tree.pid, alpha["pid"], beta["pid"])
    assert {listener, alpha["pid"], beta["pid"]} <= set(session_pids(tree.pid)), "live, in the tree"
    for entry in (alpha, beta):
        os.kill(entry["pid"], 0)
        assert entry["type"] == "sensorkit:Counter"
        assert entry["restarts"] == 0 and entry["last_exit"] is None and entry["next_retry"] is None
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit() == 0
    final = tree.state()
    assert [s["state"] for s in final["sensors"]] == ["stopped", "stopped"]
    assert final["supervisor"]["state"] == "stopped"
    assert final["listener"]["pid"] is None
    assert final["listener"]["state"] == "stopped"


def test_a_second_signal_during_the_stop_keeps_the_order(make_tree):
    tree = make_tree(
        sensor("burst", "Burst", interval=0.05, records=100)
        + sensor("stuck", "Hang", interval=0.1, good_reads=0, read_timeout=60)
    ).start()
    tree.wait_readings("burst", 3)
    tree.signal(signal.SIGTERM)
    wait_for(lambda: tree.log_lines("stopping on SIGTERM"), 10, what="stop started")
    tree.signal(signal.SIGTERM)
    tree.signal_group(signal.SIGINT)
    assert tree.wait_exit() == 0
    lines = tree.log_lines()
    assert len(tree.log_lines("sensor stuck: did not stop within 3.0 s; killing pid")) == 1
    numbers = [int(line.rsplit("=", 1)[1]) for line in lines if "burst seq=" in line]
    assert numbers == list(range(len(numbers)))
    assert lines[-1].endswith("edgesense stopped")
    assert len(tree.log_lines("stopping on")) == 1
    assert tree.leftovers() == []


def kill_and_wait_for_restart(tree, name, pid, restarts_before):
    """SIGKILL a worker and return the pid its restart logged."""
    os.kill(pid, signal.SIGKILL)
    lines = wait_for(lambda: (found := tree.log_lines(f"sensor {name}: restarted as pid")) and
                     len(found) > restarts_before and found, 10, what=f"{name} restarted")
    return int(re.search(r"as pid (\d+)", lines[-1]).group(1))


def test_a_state_file_that_cannot_be_written_is_reported_once(make_tree, tmp_path):
    state_dir = tmp_path / "state"
    tree = make_tree(COUNTERS, f'backoff_initial = 0.1\nstate_file = "{state_dir}/state.json"\n').start()
    tree.state_path = state_dir / "state.json"
    pid = tree.wait_running("alpha")[0]["pid"]
    shutil.rmtree(state_dir)
    state_dir.write_text("")
    pid = kill_and_wait_for_restart(tree, "alpha", pid, 0)
    pid = kill_and_wait_for_restart(tree, "alpha", pid, 1)
    state_dir.unlink()
    state_dir.mkdir()
    kill_and_wait_for_restart(tree, "alpha", pid, 2)
    wait_for(lambda: tree.log_lines("is written again"), 10, what="state file written again")
    assert len(tree.log_lines("cannot write the state file")) == 1
    assert tree.process.poll() is None


def test_readings_survive_rotation_and_compression(make_tree):
    tree = make_tree(
        counter("steady", interval=0.01),
    )
    tree.config_path.write_text(tree.config_path.read_text()
                                .replace("compress = false", "compress = true")
                                .replace("max_file_bytes = 1048576", "max_file_bytes = 8192"))
    tree.start()
    wait_for(lambda: len(list(tree.log_dir.glob("readings.jsonl.*.gz"))) >= 2, 20, what="compressed rotations")
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit() == 0
    values = [r["value"] for r in tree.readings("steady")]
    assert values == list(range(len(values)))
    assert len(tree.log_lines("reading sensor=steady")) == len(values)


def test_sighup_to_the_whole_group_reloads_and_kills_nothing(make_tree):
    tree = make_tree(COUNTERS).start()
    alpha, beta = tree.wait_running("alpha", "beta")
    listener = tree.state()["listener"]["pid"]
    before = set(tree.leftovers())
    tree.signal_group(signal.SIGHUP)
    wait_for(lambda: tree.log_lines("reloaded: added none; removed none; restarted none; unchanged 2"), 10,
             what="reload line")
    assert set(tree.leftovers()) == before
    assert tree.state()["listener"] == {"pid": listener, "state": "running", "restarts": 0,
                                        "last_exit": None, "next_retry": None}
    assert [s["pid"] for s in tree.state()["sensors"]] == [alpha["pid"], beta["pid"]]
    assert tree.log_lines("ended with") == []


def test_reload_with_unusable_logging_goes_back_to_the_working_settings(make_tree):
    tree = make_tree(COUNTERS).start()
    tree.wait_running("alpha", "beta")
    text = tree.config_path.read_text()
    # A folder that validation accepts (it tries the folder itself, so /proc
    # or a read-only mount is a config error) but the listener cannot use:
    # a link to a missing folder.
    (tree.config_path.parent / "unusable-logs").symlink_to(tree.config_path.parent / "missing" / "logs")
    tree.config_path.write_text(text.replace('dir = "logs"', 'dir = "unusable-logs"')
                                .replace(f'start_method = "{tree.start_method}"',
                                         f'start_method = "{tree.start_method}"\nstate_file = "logs/edgesense.state.json"'))
    tree.signal(signal.SIGHUP)
    wait_for(lambda: tree.log_lines("the reloaded [logging] settings do not work"), 15, what="fallback")
    count = len(tree.readings("alpha"))
    tree.wait_readings("alpha", count + 3)
    assert "the reloaded [logging] settings do not work" in tree.stderr_text()
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit() == 0
    assert tree.log_lines()[-1].endswith("edgesense stopped")


def test_a_new_log_level_reaches_every_sensor(make_tree):
    tree = make_tree(COUNTERS).start()
    alpha, beta = tree.wait_running("alpha", "beta")
    tree.config_path.write_text(tree.config_path.read_text().replace('dir = "logs"', 'dir = "logs"\nlevel = "DEBUG"'))
    tree.signal(signal.SIGHUP)
    wait_for(lambda: tree.log_lines("reloaded: added none; removed none; restarted alpha, beta; unchanged 0"), 15,
             what="reload line")
    wait_for(lambda: {s["pid"] for s in tree.state()["sensors"]}.isdisjoint({alpha["pid"], beta["pid"]}), 10,
             what="new pids in the state file")
    tree.wait_running("alpha", "beta")


def test_a_new_log_level_above_info_restarts_no_sensor(make_tree):
    """Workers send INFO and above whatever the level (readings are INFO
    records); only the listener applies the level, so nothing restarts."""
    tree = make_tree(COUNTERS).start()
    alpha, beta = tree.wait_running("alpha", "beta")
    tree.config_path.write_text(tree.config_path.read_text().replace('dir = "logs"', 'dir = "logs"\nlevel = "WARNING"')
                                + counter("gamma"))
    tree.signal(signal.SIGHUP)
    tree.wait_running("gamma")
    assert [(s["name"], s["pid"], s["restarts"]) for s in tree.state()["sensors"][:2]] == [
        ("alpha", alpha["pid"], 0), ("beta", beta["pid"], 0)]
    tree.wait_readings("gamma", 2)
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit() == 0


def forkserver_pid(supervisor_pid):
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
                comm = open(f"/proc/{entry}/comm").read().strip()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            if parent == supervisor_pid and comm == "es:forkserver":
                return int(entry)
    return None


def test_a_dead_fork_server_cuts_off_its_children_which_are_killed_and_restarted(tmp_path):
    tree = RunningTree(tmp_path, "forkserver", COUNTERS)
    try:
        tree.start()
        alpha, beta = tree.wait_running("alpha", "beta")
        listener = tree.state()["listener"]["pid"]
        os.kill(forkserver_pid(tree.pid), signal.SIGKILL)
        wait_for(lambda: all(s["pid"] not in (None, alpha["pid"], beta["pid"]) and s["state"] == "running"
                             for s in tree.state()["sensors"]), 15, what="sensors started again")
        for pid in (alpha["pid"], beta["pid"], listener):
            assert pid not in tree.leftovers()
        assert {s["last_exit"] for s in tree.state()["sensors"]} == {"cut off: the fork server died"}
        tree.wait_readings("alpha", len(tree.readings("alpha")) + 2)
        assert tree.log_lines("ended with exit status 255") == []
        tree.signal(signal.SIGTERM)
        assert tree.wait_exit() == 0
        assert tree.leftovers() == []
    finally:
        tree.close()


def test_sighup_to_the_demo_changes_nothing(tmp_path):
    process = subprocess.Popen(edgesense_command("run"), cwd=tmp_path, env=edgesense_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = tmp_path / "edgesense-logs" / "edgesense.log"
    try:
        wait_for(lambda: log.exists() and "reading sensor=" in log.read_text(), 20, what="demo readings")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "nothing to reload, this is the built-in demo" in log.read_text(), 10, what="warning")
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_readings_are_kept_whatever_the_log_level(make_tree):
    tree = make_tree(COUNTERS, logging_extra='level = "WARNING"').start()
    tree.wait_readings("alpha", 3)
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit() == 0
    values = [r["value"] for r in tree.readings("alpha")]
    assert values == list(range(len(values)))
    assert tree.log_lines("reading sensor=") == []
    assert tree.log_lines(" INFO ") == []


def test_a_clean_stop_says_nothing_on_stderr(make_tree):
    tree = make_tree(COUNTERS).start()
    tree.wait_readings("alpha", 2)
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit() == 0
    assert tree.stderr_text() == ""


def test_what_a_sensor_prints_goes_to_the_log_not_the_journal(make_tree):
    tree = make_tree(sensor("chatty", "Chatty", interval=0.1)).start()
    tree.wait_readings("chatty", 3)
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit() == 0
    readings = len(tree.readings("chatty"))
    assert len(tree.log_lines("sensor.stdout INFO     chatty stdout")) == readings
    assert len(tree.log_lines("sensor.stdout INFO     chatty second line")) == readings
    assert len(tree.log_lines("sensor.stderr WARNING  chatty stderr")) == readings
    assert "chatty" not in tree.stderr_text() + (tree.dir / "stdout.txt").read_text()


def test_a_sensor_slow_to_stop_on_reload_delays_no_other(make_tree):
    def stuck(interval):
        return sensor("stuck", "Hang", interval=interval, good_reads=0, read_timeout=60)

    tree = make_tree(counter("alpha") + stuck(0.1)).start()
    tree.wait_running("alpha", "stuck")
    tree.write_config(counter("alpha", interval=0.3) + stuck(0.2) + counter("beta"))
    tree.signal(signal.SIGHUP)
    wait_for(lambda: tree.log_lines("reloaded: added beta; removed none; restarted alpha, stuck"), 15,
             what="reload line")
    (killed,) = wait_for(lambda: tree.log_lines("sensor stuck: did not stop within 3.0 s; killing pid"), 10,
                         what="the stuck sensor killed")
    alpha_started = tree.log_lines("sensor alpha: started as pid")[-1]
    (beta_started,) = tree.log_lines("sensor beta: started as pid")
    assert log_time(alpha_started) < log_time(killed) - 2.0
    assert log_time(beta_started) < log_time(killed) - 2.0


LONG_STOP = 10
"""The stuck sensor's stop_timeout below: longer than the 1 s wait, the
restart of another sensor and a ``status`` run take together, each bounded
by its own wait, so the stuck one is still stopping when status looks."""


def test_a_hung_sensor_reloaded_away_stalls_no_other(make_tree):
    """The loop never waits on one child: while a sensor stuck in read()
    takes its stop_timeout, another one's crash is restarted on time and the
    state file tells the truth."""
    stuck = sensor("stuck", "Hang", interval=0.1, good_reads=0, read_timeout=60)
    tree = make_tree(counter("alpha") + stuck, "backoff_initial = 0.5\n")

    def with_long_stop():
        tree.config_path.write_text(tree.config_path.read_text().replace("stop_timeout = 3",
                                                                         f"stop_timeout = {LONG_STOP}"))

    with_long_stop()
    tree.start()
    alpha, _ = tree.wait_running("alpha", "stuck")
    tree.write_config(counter("alpha"), "backoff_initial = 0.5\n")
    with_long_stop()
    tree.signal(signal.SIGHUP)
    wait_for(lambda: tree.log_lines("reloaded: added none; removed stuck; restarted none; unchanged 1"), 10,
             what="reload line")
    time.sleep(1.0)  # well into the stuck sensor's stop
    killed_at = time.monotonic()
    os.kill(alpha["pid"], signal.SIGKILL)
    back = wait_for(lambda: (s := tree.sensor_state("alpha")) and s["pid"] not in (None, alpha["pid"]) and s,
                    10, what="alpha back in the state file")
    assert time.monotonic() - killed_at < 0.5 + 1.0
    assert back["restarts"] == 1 and back["last_exit"] == "signal SIGKILL"
    (ended,) = wait_for(lambda: tree.log_lines("sensor alpha: ended with signal SIGKILL; restart in 0.5 s"), 5,
                        what="exit line")
    (restarted,) = wait_for(lambda: tree.log_lines(f"sensor alpha: restarted as pid {back['pid']} (restart 1)"),
                            5, what="restart line")
    assert log_time(restarted) - log_time(ended) < 0.5 + 1.0
    status = run_edgesense(tree, "status", "--config", str(tree.config_path))
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[2:]}
    assert rows["alpha"][3] == str(back["pid"])
    assert rows["stuck"][2:4] == ["stopping", str(tree.sensor_state("stuck")["pid"])]
    tree.wait_readings("alpha", len(tree.readings("alpha")) + 1)
    tree.signal(signal.SIGTERM)
    assert tree.wait_exit(30) == 0
    assert len(tree.log_lines(f"sensor stuck: did not stop within {LONG_STOP:.1f} s; killing pid")) == 1
    assert tree.log_lines()[-1].endswith("edgesense stopped")
    assert tree.leftovers() == []


def test_a_listener_that_cannot_start_stops_the_tree_with_one_clear_line(make_tree):
    """The log folder turns into a file under a running tree (validation
    accepts no such folder at start); the killed listener's successors die
    at once, each saying why in one line, and the tree gives up."""
    # backoff_max keeps the five growing delays between the listener's
    # restarts short: 0.5, 1, 1, 1 s.
    tree = make_tree(COUNTERS, 'state_file = "state/state.json"\nbackoff_max = 1\n')
    tree.state_path = tree.dir / "state" / "state.json"
    tree.start()
    tree.wait_running("alpha", "beta")
    time.sleep(1.5)  # past a quick death: only the successors count
    listener = tree.state()["listener"]["pid"]
    shutil.rmtree(tree.log_dir)
    tree.log_dir.write_text("not a folder")
    os.kill(listener, signal.SIGKILL)
    assert tree.wait_exit(60) == 1
    lines = tree.stderr_text().splitlines()
    reason = f"edgesense: cannot use the log folder {tree.log_dir}: Not a directory"
    restarting = re.compile(r"edgesense: log listener \(pid \d+\) ended with (signal SIGKILL|exit status 2); "
                            r"restarting it on the same socket in [0-9.]+ s")
    assert [line == reason for line in lines[:-1]] == [False, True] * 5
    assert all(restarting.fullmatch(line) for line in lines[:-1:2])
    assert lines[-1] == ("edgesense: log listener cannot start: it ended within 1 s of its start 5 times in a "
                         "row (last: exit status 2); edgesense stops with exit status 1")
    assert all(line.startswith("edgesense: ") for line in lines)
    state = tree.state()
    assert (state["supervisor"]["state"], state["listener"]["state"]) == ("stopped", "failed")
    assert [s["state"] for s in state["sensors"]] == ["stopped", "stopped"]
    assert tree.leftovers() == []


def snapshot(directory):
    """Every entry's name, and each file's size and time of change (a
    folder's own time changes with what the running tree does inside)."""
    return {p.relative_to(directory): p.is_file() and (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


def run_edgesense(tree, *args):
    """``edgesense ARGS`` beside a running tree, with its environment."""
    return subprocess.run(edgesense_command(*args), cwd=tree.dir, env=tree.env, capture_output=True, text=True,
                          timeout=30)


def test_a_second_run_on_the_same_config_says_who_runs_and_writes_nothing(make_tree):
    tree = make_tree(counter("slow", interval=60)).start()
    tree.wait_readings("slow", 1)
    tree.wait_running("slow")
    before = snapshot(tree.dir)
    second = run_edgesense(tree, "run", "--config", str(tree.config_path))
    assert second.returncode == 2
    started = json.loads((tree.state_path.parent / (tree.state_path.name + ".lock")).read_text())["since"]
    since = datetime.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S")
    assert second.stderr == (f"edgesense already runs with {tree.config_path} (pid {tree.pid}, since {since}); "
                             f"not starting a second tree (lock {tree.state_path}.lock)\n")
    assert second.stdout == ""
    assert snapshot(tree.dir) == before
    status = run_edgesense(tree, "status", "--config", str(tree.config_path))
    assert status.returncode == 0
    tree.process.kill()
    tree.process.wait(5)
    wait_for(lambda: tree.leftovers() == [], 10, what="the tree gone")
    status = run_edgesense(tree, "status", "--config", str(tree.config_path))
    assert status.returncode == 1
    assert status.stdout.startswith(f"edgesense is not running (supervisor pid {tree.pid} is gone)")


def ps_names(pid):
    """``(comm, args)`` of a process as ``ps -o comm=,args=`` shows them."""
    line = subprocess.run(["ps", "-o", "comm=,args=", "-p", str(pid)], capture_output=True, text=True,
                          timeout=10).stdout.strip()
    comm, _, args = line.partition(" ")
    return comm, args.strip()


def test_only_the_fork_server_takes_the_fork_servers_name():
    assert "app.fork_server_name" in sys.modules  # imported by this test file, in pytest's process
    assert open("/proc/self/comm").read().strip() != "es:forkserver"
    assert is_the_fork_server(["-c"], {"multiprocessing.forkserver": None})
    assert not is_the_fork_server(["-c"], {})
    assert not is_the_fork_server(["pytest"], {"multiprocessing.forkserver": None})


@pytest.mark.skipif(shutil.which("ps") is None, reason="needs ps")
def test_every_process_says_what_it_is_in_ps(make_tree):
    tree = make_tree(counter("door") + counter("a-long-sensor-name")).start()
    door, long_name = tree.wait_running("door", "a-long-sensor-name")
    listener = tree.state()["listener"]["pid"]
    assert ps_names(tree.pid) == ("edgesense", "edgesense: supervisor")
    assert ps_names(listener) == ("es:log-listener", "edgesense: log-listener")
    assert ps_names(door["pid"]) == ("es:door", "edgesense: sensor door")
    assert ps_names(long_name["pid"]) == ("es:a-long-senso", "edgesense: sensor a-long-sensor-name")
    if tree.start_method == "forkserver":
        assert ps_names(forkserver_pid(tree.pid)) == ("es:forkserver", "edgesense: fork server")

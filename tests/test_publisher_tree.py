"""The publisher as a child of a real tree: started and supervised with the
sensors, in the state file and in status, and nothing lost when the whole
tree is killed and started again or reloaded."""

import json
import os
import signal
import subprocess
import time

import pytest

from app.backlog import Backlog, Position
from helpers import ROOT, TESTS, edgesense_command, wait_for
from mqtt_broker import Collector, broker, retained  # noqa: F401
from running_tree import RunningTree

NODE = "treenode"


def sensors_and_mqtt(broker, names=("a", "b"), interval=0.05):
    sections = "".join(f'[[sensor]]\nname = "{name}"\ntype = "sensorkit:Counter"\ninterval = {interval}\n\n'
                       for name in names)
    return sections + f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nnode = "{NODE}"\n'


@pytest.fixture
def tree(tmp_path):
    started = []

    def start(broker, start_method="forkserver", names=("a", "b")):
        running = RunningTree(tmp_path, start_method, sensors_and_mqtt(broker, names)).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


def ids_in_files(log_dir):
    """``(sensor, id)`` of every reading in readings.jsonl and its copies."""
    backlog = Backlog(log_dir)
    backlog.refresh()
    backlog.read_at = Position()  # from the oldest reading, whatever the publisher's cursor says
    found = []
    while True:
        lines = backlog.lines(500)
        if not lines:
            backlog.close()
            return found
        found += [(json.loads(line.text)["sensor"], f"{line.key}-{line.number}") for line in lines]


def ids_received(collector):
    return [(message["sensor"], message["id"]) for topic, payload, _retain in list(collector.messages)
            if topic.endswith("/reading") for message in [json.loads(payload)]]


def all_arrived(collector, log_dir):
    wanted = set(ids_in_files(log_dir))
    return wanted and wanted <= set(ids_received(collector))


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_the_publisher_is_a_supervised_child_in_the_state_file_and_status(broker, tree, start_method):
    collector = Collector(broker, ("edgesense/#",))
    running = tree(broker, start_method)
    running.wait_running("a", "b")
    wait_for(lambda: (running.state() or {}).get("publisher", {}).get("connected"), 20, what="connected")
    publisher = running.state()["publisher"]
    assert publisher["state"] == "running" and publisher["pid"] and publisher["backlog"] >= 0
    status = subprocess.run(edgesense_command("status", "--config", str(running.config_path)),
                            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert f"publisher: running, pid {publisher['pid']}, connected to 127.0.0.1:{broker.port}" in status.stdout
    running.signal(signal.SIGTERM)
    assert running.wait_exit() == 0
    assert all_arrived(collector, running.log_dir)
    assert retained(broker, f"edgesense/{NODE}/availability") == {f"edgesense/{NODE}/availability": b"offline"}
    assert running.leftovers() == []


def test_a_killed_publisher_is_restarted_and_loses_nothing(broker, tree):
    import os

    collector = Collector(broker, ("edgesense/+/+/reading",))
    running = tree(broker)
    running.wait_running("a", "b")
    first = wait_for(lambda: (running.state() or {}).get("publisher", {}).get("pid"), 20, what="a publisher")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: running.state()["publisher"].get("pid") not in (None, first), 20, what="a new publisher")
    running.wait_readings("a", 100)
    running.signal(signal.SIGTERM)
    assert running.wait_exit() == 0
    assert all_arrived(collector, running.log_dir)


def test_the_whole_tree_killed_and_started_again_loses_nothing(broker, tree):
    collector = Collector(broker, ("edgesense/+/+/reading",))
    running = tree(broker)
    running.wait_readings("a", 40)
    running.signal_group(signal.SIGKILL)
    running.wait_exit()
    wait_for(lambda: not running.leftovers(), 10, what="the tree gone")
    again = tree(broker)
    again.wait_readings("a", 80)
    again.signal(signal.SIGTERM)
    assert again.wait_exit() == 0
    assert all_arrived(collector, again.log_dir)
    received = ids_received(collector)
    for sensor in ("a", "b"):
        in_files = [identity for name, identity in ids_in_files(again.log_dir) if name == sensor]
        arrived = list(dict.fromkeys(identity for name, identity in received if name == sensor))
        assert arrived == in_files  # per sensor, in the order of the files


def test_a_reload_that_removes_a_sensor_clears_its_discovery_and_loses_nothing(broker, tree):
    collector = Collector(broker, ("edgesense/+/+/reading",))
    running = tree(broker, names=("a", "b"))
    running.wait_running("a", "b")
    wait_for(lambda: len(retained(broker, "homeassistant/#", settle=0.3)) == 2, 20, what="discovery")
    running.config_path.write_text(running.config_path.read_text().replace(
        '[[sensor]]\nname = "b"\ntype = "sensorkit:Counter"\ninterval = 0.05\n\n', ""))
    running.signal(signal.SIGHUP)
    wait_for(lambda: sorted(t for t, p in retained(broker, "homeassistant/#", settle=0.3).items() if p)
             == [f"homeassistant/sensor/{NODE}/a/config"], 20, what="b's discovery cleared")
    running.signal(signal.SIGTERM)
    assert running.wait_exit() == 0
    assert all_arrived(collector, running.log_dir)


def path_without_paho(folder):
    """A PYTHONPATH on which Python cannot import paho-mqtt, as one without it
    installed: its sitecustomize, run as every interpreter starts (spawned and
    forkserver children too), puts None in sys.modules["paho"]."""
    hook = folder / "without-paho"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text('import sys\nsys.modules["paho"] = None\n')
    return os.pathsep.join(map(str, (hook, ROOT, TESTS)))


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_without_paho_the_sensors_run_and_the_publisher_says_so_once(tmp_path, start_method):
    """The publisher stays up and looks for paho again every few seconds,
    quietly: no traceback, no restarts, one line in the log and in status."""
    sensors = "".join(f'[[sensor]]\nname = "{name}"\ntype = "sensorkit:Counter"\ninterval = 0.05\n\n'
                      for name in ("a", "b"))
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = 9\nnode = "{NODE}"\n'
    running = RunningTree(tmp_path, start_method, sensors + mqtt,
                          env={"PYTHONPATH": path_without_paho(tmp_path)}).start()
    try:
        wait_for(lambda: running.log_lines("paho-mqtt is not installed"), 20, what="the publisher's line")
        pid = wait_for(lambda: ((running.state() or {}).get("publisher") or {}).get("pid"), 20,
                       what="the publisher in the state file")  # its line may come before the first state file
        time.sleep(2.5)  # its next looks for paho, 1 and 2 s apart
        count = len(running.readings("a"))
        running.wait_readings("a", count + 10)
        status = subprocess.run(edgesense_command("status", "--config", str(running.config_path)),
                                capture_output=True, text=True, timeout=30, cwd=ROOT)
        running.signal(signal.SIGTERM)
        assert running.wait_exit() == 0
        stderr = running.stderr_text()
    finally:
        running.close()
    (line,) = running.log_lines("paho-mqtt")
    assert line.endswith("WARNING  [mqtt] is set, but paho-mqtt is not installed for "
                         f"{edgesense_command()[0]}, so the publisher cannot send anything; install it with: "
                         f"{edgesense_command()[0]} -m pip install 'paho-mqtt>=2.0,<3'; "
                         "retrying every 5 s at most, readings wait on disk"), line
    assert running.log_lines("publisher: restarted") == []
    assert "Traceback" not in running.log_text() + stderr
    assert (f"publisher: running, pid {pid}, not connected to 127.0.0.1:9 ([mqtt] is set, but paho-mqtt is "
            "not installed for ") in status.stdout, status.stdout

"""The built-in demo: its sensors on gpiozero's mock pins, and ``edgesense
run`` with no config, started, watched and stopped like a person would."""

import ast
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from app.demo import BANNER
from helpers import ROOT, edgesense, edgesense_command, edgesense_environment
from sensors import registry


def read_until(sensor, done, timeout):
    """Read ``sensor`` every 0.1 s until ``done(readings)``; the readings."""
    readings = []
    deadline = time.monotonic() + timeout
    while not done(readings):
        assert time.monotonic() < deadline, readings
        readings.append(sensor.read())
        time.sleep(0.1)
    return readings


@pytest.mark.parametrize("type_name", ["sensors.demo:DemoButton", "sensors.demo:DemoMotion"])
def test_demo_input_is_activated_by_its_pattern(type_name):
    with registry.build(type_name, {"pin": 5}, pin_factory=MockFactory()) as sensor:
        # The pattern activates the input at least every 3.1 s (button) / 6 s (motion).
        readings = read_until(sensor, lambda seen: any(r.value == 1.0 for r in seen)
                              and sum(r.extra["activations"] for r in seen) >= 1, timeout=15)

    assert {reading.value for reading in readings} <= {0.0, 1.0}
    assert sensor._driver.is_alive() is False


def test_demo_light_changes_with_its_sky():
    with registry.build("sensors.demo:DemoLight", {"pin": 6, "period": 2.0},
                        pin_factory=MockFactory()) as sensor:
        readings = read_until(sensor, lambda seen: len({r.value for r in seen}) >= 5, timeout=10)

    assert all(0.0 <= reading.value <= 1.0 for reading in readings)


@pytest.mark.parametrize("type_name, unit", [("sensors.demo:DemoButton", "state"),
                                             ("sensors.demo:DemoMotion", "state"),
                                             ("sensors.demo:DemoLight", "fraction")])
def test_demo_readings_have_the_units_of_the_types_they_imitate(type_name, unit):
    """README's Types table: button and motion give state 0/1 in `state`,
    light 0 to 1 in `fraction`."""
    with registry.build(type_name, {"pin": 5}, pin_factory=MockFactory()) as sensor:
        reading = sensor.read()
    assert reading.unit == unit
    assert type(reading.value) is (int if unit == "state" else float)


def test_demo_sensor_close_is_idempotent():
    sensor = registry.build("sensors.demo:DemoButton", {"pin": 5}, pin_factory=MockFactory())
    sensor.close()
    sensor.close()

    assert sensor._driver.is_alive() is False


def supervisor_is_a_stub():
    """True while app/supervisor.py's run_service only raises NotImplementedError."""
    tree = ast.parse((ROOT / "app" / "supervisor.py").read_text())
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "run_service")
    body = [node for node in function.body
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])


def readings_by_sensor(path):
    found = {}
    if path.exists():
        for text in path.read_text().splitlines():
            reading = json.loads(text)
            found.setdefault(reading["sensor"], []).append(reading)
    return found


def demo_shows_changes(readings):
    def activated(name):
        return any(r["value"] == 1 or r.get("activations") for r in readings.get(name, []))
    return (activated("button") and activated("motion")
            and len({r["value"] for r in readings.get("light", [])}) >= 2
            and "load" in readings and "disk" in readings)


def group_is_gone(group, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(supervisor_is_a_stub(), reason="app.supervisor.run_service has not landed")
@pytest.mark.skipif(Path("/etc/edgesense/config.toml").exists(), reason="this machine has a config")
def test_demo_runs_shows_changing_readings_and_stops_on_ctrl_c(tmp_path):
    console = tmp_path / "console.txt"
    with open(console, "wb") as stderr:
        process = subprocess.Popen(edgesense_command("run"), cwd=tmp_path,
                                   env=edgesense_environment(), stdout=stderr, stderr=stderr,
                                   start_new_session=True)
    try:
        readings_file = tmp_path / "edgesense-logs" / "readings.jsonl"
        deadline = time.monotonic() + 30
        while not demo_shows_changes(readings_by_sensor(readings_file)):
            assert process.poll() is None, console.read_text()
            assert time.monotonic() < deadline, console.read_text()
            time.sleep(0.2)

        status = edgesense("status", cwd=tmp_path)
        logs = edgesense("logs", "--sensor", "light", "-n", "2", cwd=tmp_path)

        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert process.wait(timeout=30) == 0
        assert group_is_gone(process.pid, timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    output = console.read_text()
    assert output.splitlines()[0] == BANNER
    assert "Traceback" not in output
    assert "sensor=light" in output, "readings are shown live in the terminal"
    assert status.returncode == 0, status.stdout + status.stderr
    assert [text.split()[0] for text in status.stdout.splitlines()[2:]] == [
        "button", "motion", "light", "load", "disk"]
    assert [text.split()[2] for text in logs.stdout.splitlines()] == ["sensor:light"] * 2

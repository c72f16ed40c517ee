"""A real edgesense tree for process tests: ``python -m app run`` in a
subprocess of its own session, with its config, logs and state file in a
temporary directory."""

import gzip
import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

from helpers import edgesense_command, edgesense_environment, wait_for
from logging_setup.names import oldest_first

KILL_PASSES = 100
"""Rounds of SIGKILL to every live process of a tree's session at its
teardown (a process forked meanwhile is found by the next round)."""


def session_pids(sid):
    """Every live process of session ``sid`` (zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


class RunningTree:
    def __init__(self, directory, start_method, sensors, supervisor="", logging_extra="", env=None):
        self.dir = Path(directory)
        self.log_dir = self.dir / "logs"
        self.config_path = self.dir / "edgesense.toml"
        self.state_path = self.log_dir / "edgesense.state.json"
        self.start_method = start_method
        self.write_config(sensors, supervisor, logging_extra)
        self.env = edgesense_environment(**(env or {}))
        self.process = None

    def write_config(self, sensors, supervisor="", logging_extra=""):
        self.config_path.write_text(
            textwrap.dedent(
                f"""\
                [logging]
                dir = "logs"
                console = false
                compress = false
                max_file_bytes = 1048576
                max_total_bytes = 16777216
                {logging_extra}
                [supervisor]
                start_method = "{self.start_method}"
                stop_timeout = 3
                """
            )
            + textwrap.dedent(supervisor)
            + "\n"
            + textwrap.dedent(sensors)
        )

    def start(self):
        self.stdout = open(self.dir / "stdout.txt", "wb")
        self.stderr = open(self.dir / "stderr.txt", "wb")
        self.process = subprocess.Popen(
            edgesense_command("run", "--config", str(self.config_path)),
            cwd=self.dir, env=self.env, stdout=self.stdout, stderr=self.stderr,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    @property
    def pid(self):
        return self.process.pid

    def state(self):
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def sensor_state(self, name):
        state = self.state()
        if state is None:
            return None
        return next((s for s in state["sensors"] if s["name"] == name), None)

    def wait_running(self, *names, timeout=20):
        def all_running():
            entries = [self.sensor_state(n) for n in names]
            return all(e and e["state"] == "running" and e["pid"] for e in entries) and entries
        return wait_for(all_running, timeout, what=f"{names} running")

    def all_files(self, live_name):
        """The text of a log file and its rotated copies, oldest first."""
        names = os.listdir(self.log_dir) if self.log_dir.is_dir() else []
        rotated = [self.log_dir / name for name in oldest_first(names, live_name)]
        texts = []
        for path in [*rotated, self.log_dir / live_name]:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            texts.append((gzip.decompress(data) if path.suffix == ".gz" else data).decode())
        return "".join(texts)

    def log_text(self):
        return self.all_files("edgesense.log")

    def log_lines(self, containing=""):
        return [line for line in self.log_text().splitlines() if containing in line]

    def readings(self, sensor=None):
        lines = self.all_files("readings.jsonl").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if sensor is None or r["sensor"] == sensor]

    def wait_readings(self, sensor, count, timeout=20):
        return wait_for(lambda: len(self.readings(sensor)) >= count and self.readings(sensor),
                        timeout, what=f"{count} readings of {sensor}")

    def stderr_text(self):
        self.stderr.flush()
        return (self.dir / "stderr.txt").read_text()

    def signal(self, signum):
        os.kill(self.pid, signum)

    def signal_group(self, signum):
        os.killpg(self.pid, signum)

    def wait_exit(self, timeout=30):
        return self.process.wait(timeout)

    def leftovers(self):
        return session_pids(self.pid)

    def close(self):
        """Teardown: never leave a process of the tree behind. The test is
        done with the tree, so every process of it is killed at once (a
        stop would wait out the stop_timeout of a sensor stuck in read()
        for nothing)."""
        if self.process is None:
            return
        for _ in range(KILL_PASSES):
            left = session_pids(self.pid)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.stdout.close()
        self.stderr.close()

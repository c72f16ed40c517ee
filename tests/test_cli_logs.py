"""``edgesense logs`` over real files: live, rotated and gzipped (in-process),
and -f across a rotation, stopped by Ctrl-C (a real subprocess)."""

import gzip
import json
import os
import selectors
import signal
import subprocess
import time

import pytest

from helpers import edgesense_command, edgesense_environment, edgesense_in_process

ONE_SENSOR = '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 10\n'


def line(number, process="MainProcess", level="INFO", logger="app.supervisor"):
    """A record as the listener writes it (its format, padded fields)."""
    return (f"2026-11-25 10:00:{number % 60:02d},{number:03d} {process:<10} {logger} "
            f"{level:<8} record {number}")


def records(numbers, **fields):
    return "".join(line(number, **fields) + "\n" for number in numbers)


@pytest.fixture
def log_dir(tmp_path):
    """A config and its log folder: records 1-40 in four files, oldest in
    the compressed .3.gz, newest in the live file; a half-written archive
    under a temporary name that must be ignored."""
    (tmp_path / "edgesense.toml").write_text('[logging]\ndir = "logs"\n' + ONE_SENSOR)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "edgesense.log.3.gz").write_bytes(gzip.compress(records(range(1, 11)).encode()))
    (logs / "edgesense.log.2.gz").write_bytes(gzip.compress(records(range(11, 21)).encode()))
    (logs / "edgesense.log.1").write_text(records(range(21, 31)))
    (logs / "edgesense.log").write_text(records(range(31, 41)))
    (logs / "edgesense.log.4.gz.tmp").write_bytes(b"\x1f\x8b torn")
    return logs


def numbers_of(output):
    return [int(text.rsplit(" ", 1)[1]) for text in output.splitlines()]


@pytest.mark.parametrize("count, first", [(5, 36), (15, 26), (25, 16), (40, 1), (100, 1)])
def test_last_lines_across_live_rotated_and_compressed_files_oldest_first(log_dir, count, first):
    result = edgesense_in_process("logs", "-n", str(count), cwd=log_dir.parent)

    assert result.returncode == 0, result.stderr
    assert numbers_of(result.stdout) == list(range(first, 41))


def test_zero_lines_prints_nothing(log_dir):
    result = edgesense_in_process("logs", "-n", "0", cwd=log_dir.parent)

    assert (result.returncode, result.stdout) == (0, "")


def test_filter_by_sensor_and_level(log_dir):
    (log_dir / "edgesense.log.2.gz").write_bytes(gzip.compress((
        records([11], process="sensor:door", level="WARNING", logger="sensors.digital")
        + records([12], process="sensor:door", level="INFO", logger="sensors.digital")
        + records([13], process="sensor:doorbell", level="ERROR")).encode()))
    (log_dir / "edgesense.log").write_text(
        records([41], process="sensor:door", level="ERROR")
        + "Traceback (most recent call last):\n  File \"x.py\", line 1\nOSError: gone\n"
        + records([42], level="CRITICAL"))

    door = edgesense_in_process("logs", "--sensor", "door", cwd=log_dir.parent)
    warnings = edgesense_in_process("logs", "--level", "warning", cwd=log_dir.parent)
    door_errors = edgesense_in_process("logs", "--sensor", "door", "--level", "ERROR", "-n", "1",
                                       cwd=log_dir.parent)

    traceback = ['Traceback (most recent call last):', '  File "x.py", line 1', "OSError: gone"]
    assert door.stdout.splitlines() == [
        line(11, process="sensor:door", level="WARNING", logger="sensors.digital"),
        line(12, process="sensor:door", level="INFO", logger="sensors.digital"),
        line(41, process="sensor:door", level="ERROR"),
        *traceback,
    ]
    assert [text.split()[-1] for text in warnings.stdout.splitlines()
            if text.startswith("2026")] == ["11", "13", "41", "42"]
    assert door_errors.stdout.splitlines() == [line(41, process="sensor:door", level="ERROR"),
                                               *traceback]


def test_readings_file_with_sensor_filter(log_dir):
    def reading(number, sensor):
        return json.dumps({"ts": f"2026-11-25T10:00:{number:02d}", "sensor": sensor,
                           "value": number}) + "\n"
    (log_dir / "readings.jsonl.1.gz").write_bytes(gzip.compress(
        "".join(reading(n, "door" if n % 2 else "light") for n in range(1, 11)).encode()))
    (log_dir / "readings.jsonl").write_text("".join(reading(n, "door") for n in range(11, 14)))

    result = edgesense_in_process("logs", "--readings", "--sensor", "door", "-n", "5", cwd=log_dir.parent)

    assert result.returncode == 0, result.stderr
    assert [json.loads(text)["value"] for text in result.stdout.splitlines()] == [7, 9, 11, 12, 13]


def test_missing_log_folder_says_so(tmp_path):
    (tmp_path / "edgesense.toml").write_text('[logging]\ndir = "logs"\n' + ONE_SENSOR)

    result = edgesense_in_process("logs", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr == (f"edgesense: no log folder at {tmp_path / 'logs'} "
                             "(edgesense has not run with this config yet)\n")
    assert not (tmp_path / "logs").exists()


def test_level_does_not_apply_to_readings(log_dir):
    result = edgesense_in_process("logs", "--readings", "--level", "ERROR", cwd=log_dir.parent)

    assert (result.returncode, result.stderr) == (2, "edgesense: --level does not apply to --readings\n")


def test_sensor_names_match_ignoring_case(log_dir):
    (log_dir / "edgesense.log").write_text(
        records([41], process="sensor:door") + records([42], process="sensor:Door")
        + records([43], process="sensor:doorbell") + records([44]))

    result = edgesense_in_process("logs", "--sensor", "DOOR", cwd=log_dir.parent)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [line(41, process="sensor:door"), line(42, process="sensor:Door")]


def test_a_sensor_of_the_config_without_records_prints_nothing(log_dir):
    result = edgesense_in_process("logs", "--sensor", "Load", cwd=log_dir.parent)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_sensor_only_in_the_log_is_shown(log_dir):
    """A sensor since removed from the config still has its history."""
    (log_dir / "edgesense.log.1").write_text(records([21], process="sensor:door"))

    result = edgesense_in_process("logs", "--sensor", "door", cwd=log_dir.parent)

    assert (result.returncode, result.stdout) == (0, line(21, process="sensor:door") + "\n")


@pytest.mark.parametrize("typed, suggestion", [("lod", "; did you mean load?"),
                                               ("dor", "; did you mean door?"),
                                               ("nothing_like_it", "")])
def test_an_unknown_sensor_is_a_bad_command_line_with_a_suggestion(log_dir, typed, suggestion):
    (log_dir / "edgesense.log.2.gz").write_bytes(gzip.compress(records([11], process="sensor:door").encode()))

    result = edgesense_in_process("logs", "--sensor", typed, cwd=log_dir.parent)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f'edgesense: no sensor named "{typed}" in {log_dir.parent / "edgesense.toml"} '
                             f"or in its log{suggestion}\n")


def test_an_unknown_sensor_of_the_readings_is_looked_for_in_the_readings(log_dir):
    (log_dir / "readings.jsonl").write_text(json.dumps({"ts": "2026-11-25T10:00:01", "sensor": "tank",
                                                        "value": 1}) + "\n")
    (log_dir / "edgesense.log").write_text(records([41], process="sensor:door"))

    tank = edgesense_in_process("logs", "--readings", "--sensor", "TANK", cwd=log_dir.parent)
    door = edgesense_in_process("logs", "--readings", "--sensor", "door", cwd=log_dir.parent)

    assert (tank.returncode, len(tank.stdout.splitlines())) == (0, 1)
    assert (door.returncode, door.stdout) == (2, "")
    assert door.stderr == f'edgesense: no sensor named "door" in {log_dir.parent / "edgesense.toml"} or in its log\n'


def test_an_unknown_sensor_of_the_demo_is_named_so_without_a_log_folder(tmp_path):
    result = edgesense_in_process("logs", "--sensor", "lihgt", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ('edgesense: no sensor named "lihgt" in the built-in demo or in its log; '
                             "did you mean light?\n")


def test_follow_of_an_unknown_sensor_exits_2_at_once(log_dir):
    result = subprocess.run(edgesense_command("logs", "-f", "--sensor", "lod"), cwd=log_dir.parent,
                            env=edgesense_environment(), capture_output=True, text=True, timeout=30)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.endswith("did you mean load?\n")


def test_a_reader_that_goes_away_ends_logs_quietly(log_dir):
    """``edgesense logs | head -1``: the pipe closes long before the output ends."""
    (log_dir / "edgesense.log").write_text(records(range(41, 10041)))  # far more than a pipe holds
    with subprocess.Popen(edgesense_command("logs", "-n", "10000"), cwd=log_dir.parent,
                          env=edgesense_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout.readline().decode() == line(1) + "\n"
        process.stdout.close()
        assert process.wait(timeout=30) == 0
        assert process.stderr.read() == b""


class LineReader:
    """Lines from a child's stdout, each wait bounded."""

    def __init__(self, process):
        self.process = process
        self.selector = selectors.DefaultSelector()
        self.selector.register(process.stdout, selectors.EVENT_READ)
        self.buffer = b""

    def read(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.buffer.count(b"\n") < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; got {self.buffer!r}"
            if self.selector.select(remaining):
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"stdout closed; got {self.buffer!r}"
                self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n", count)
        return [text.decode() for text in lines]


@pytest.fixture
def follower(log_dir):
    process = subprocess.Popen(edgesense_command("logs", "-f", "-n", "2"), cwd=log_dir.parent,
                               env=edgesense_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield process, LineReader(process)
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def append(path, text):
    with open(path, "a") as handle:
        handle.write(text)


def test_follow_prints_new_lines_across_a_rotation(log_dir, follower):
    process, reader = follower
    live = log_dir / "edgesense.log"
    assert reader.read(2) == [line(39), line(40)]

    append(live, records([41, 42]))
    assert reader.read(2) == [line(41), line(42)]

    append(live, records([43]))  # written just before the rotation
    os.rename(log_dir / "edgesense.log.1", log_dir / "edgesense.log.2")
    os.rename(live, log_dir / "edgesense.log.1")
    live.write_text(records([44, 45]))
    assert reader.read(3) == [line(43), line(44), line(45)]

    append(live, records([46]))
    assert reader.read(1) == [line(46)]

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
    assert process.stderr.read() == b""


def test_follow_starts_over_when_the_file_shrinks(log_dir, follower):
    process, reader = follower
    assert reader.read(2) == [line(39), line(40)]

    (log_dir / "edgesense.log").write_text(records([1]))  # truncated in place, same inode
    assert reader.read(1) == [line(1)]


def test_follow_waits_for_a_partial_line_to_end(log_dir, follower):
    process, reader = follower
    assert reader.read(2) == [line(39), line(40)]

    append(log_dir / "edgesense.log", line(41)[:20])
    time.sleep(0.6)  # a few polls see the partial line
    append(log_dir / "edgesense.log", line(41)[20:] + "\n")
    assert reader.read(1) == [line(41)]

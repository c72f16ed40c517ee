"""The log directory: rotation names, the budget, compression, leftovers (L7, L8)."""

import base64
import gzip
import os
import random
import time

import pytest

from helpers import LINE_BYTES, disk_bytes, file_lines, numbered_lines
from logging_setup.directory import RESCAN_SECONDS, LogDirectory, gzip_file


STATE_FILE_RESERVE = 4096
RESERVED = ("edgesense.state.json", STATE_FILE_RESERVE)


def rotated_names(directory, live_name):
    names = [name for name in os.listdir(directory.path) if name.startswith(live_name + ".")]
    return sorted(names, key=lambda name: int(name.split(".")[2]))


def lines_oldest_first(directory, live_name):
    """Every line the rotated files and the live file hold, oldest first."""
    paths = [os.path.join(directory.path, name) for name in rotated_names(directory, live_name)]
    lines = []
    for path in paths + [os.path.join(directory.path, live_name)]:
        lines.extend(file_lines(path))
    return lines


def write(live, lines):
    for line in lines:
        assert live.append(line)
    live.flush()


@pytest.mark.parametrize("compress, suffix", [(True, ".gz"), (False, "")])
def test_rotated_files_are_numbered_in_rotation_order(tmp_path, compress, suffix):
    directory = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=100_000, compress=compress)
    live = directory.open_live("edgesense.log")
    lines = numbered_lines(70)
    write(live, lines)
    live.close()

    assert rotated_names(directory, "edgesense.log") == [f"edgesense.log.{n}{suffix}" for n in (1, 2, 3)]
    assert file_lines(str(tmp_path / f"edgesense.log.1{suffix}")) == lines[:20]
    assert file_lines(str(tmp_path / f"edgesense.log.3{suffix}")) == lines[40:60]
    assert lines_oldest_first(directory, "edgesense.log") == lines
    assert sorted(os.listdir(tmp_path)) == ["edgesense.log"] + [f"edgesense.log.{n}{suffix}" for n in (1, 2, 3)]


def test_budget_deletes_the_oldest_rotated_files_of_either_kind(tmp_path):
    budget = 4 * 1000 + STATE_FILE_RESERVE + 500
    directory = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=budget, compress=False, reserved=RESERVED)
    log = directory.open_live("edgesense.log")
    readings = directory.open_live("readings.jsonl")
    log_lines, reading_lines = numbered_lines(200), numbered_lines(200, start=1000)
    for log_line, reading_line in zip(log_lines, reading_lines):
        write(log, [log_line])
        write(readings, [reading_line])
        assert disk_bytes(tmp_path) + STATE_FILE_RESERVE <= budget

    kept = [int(name.split(".")[2]) for name in rotated_names(directory, "edgesense.log")
            + rotated_names(directory, "readings.jsonl")]
    assert sorted(kept) == list(range(max(kept) - len(kept) + 1, max(kept) + 1))  # the newest, of either kind
    for live_name, lines in [("edgesense.log", log_lines), ("readings.jsonl", reading_lines)]:
        kept = lines_oldest_first(directory, live_name)
        assert kept == lines[-len(kept):]
        assert len(kept) >= 20


def test_state_file_counts_in_the_budget(tmp_path):
    (tmp_path / "edgesense.state.json").write_bytes(b"{}" * 3000)
    directory = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=12_000, compress=False)
    live = directory.open_live("edgesense.log")
    for line in numbered_lines(500):
        write(live, [line])
        assert disk_bytes(tmp_path) <= 12_000


def test_budget_holds_while_compressing(tmp_path):
    """The temporary archive needs room next to the file it compresses."""
    budget = 3 * 2000 + STATE_FILE_RESERVE
    peaks = []

    def compress_and_measure(plain, packed):
        gzip_file(plain, packed)
        peaks.append(disk_bytes(tmp_path))

    directory = LogDirectory(tmp_path, max_file_bytes=2000, max_total_bytes=budget, compressor=compress_and_measure,
                             reserved=RESERVED)
    live = directory.open_live("edgesense.log")
    noise = random.Random(7)
    for _ in range(1000):
        write(live, [base64.b64encode(noise.randbytes(36)) + b"\n"])
    assert len(peaks) > 10
    assert max(peaks) + STATE_FILE_RESERVE <= budget


def test_interrupted_rotation_leftovers_are_removed_at_start(tmp_path):
    (tmp_path / "edgesense.log.1.gz").write_bytes(gzip.compress(b"complete\n"))
    (tmp_path / "edgesense.log.1").write_bytes(b"complete\n")
    (tmp_path / "edgesense.log.2.gz.tmp").write_bytes(b"torn")
    (tmp_path / "edgesense.log.new").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"not ours")
    directory = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=100_000)
    directory.open_live("edgesense.log")
    assert sorted(os.listdir(tmp_path)) == ["edgesense.log", "edgesense.log.1.gz", "notes.txt"]


def test_live_name_never_vanishes_and_keeps_growing_after_restart(tmp_path):
    directory = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=100_000)
    live = directory.open_live("edgesense.log")
    write(live, numbered_lines(15))
    live.close()
    again = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=100_000).open_live("edgesense.log")
    write(again, numbered_lines(10, start=15))
    again.close()
    assert file_lines(str(tmp_path / "edgesense.log")) == numbered_lines(25)[20:]
    assert file_lines(str(tmp_path / "edgesense.log.1.gz")) == numbered_lines(20)


def test_a_budget_under_twice_the_file_size_still_holds(tmp_path):
    """Config validation refuses such a budget; the directory copes anyway."""
    budget = 4000 + STATE_FILE_RESERVE
    directory = LogDirectory(tmp_path, max_file_bytes=4000, max_total_bytes=budget, reserved=RESERVED)
    log = directory.open_live("edgesense.log")
    readings = directory.open_live("readings.jsonl")
    for line in numbered_lines(400):
        write(log, [line])
        write(readings, [line])
        assert disk_bytes(tmp_path) + STATE_FILE_RESERVE <= budget
    assert file_lines(str(tmp_path / "edgesense.log"))[-1] == numbered_lines(400)[-1]


def fill_with_foreign_file(tmp_path, reports):
    """Two live files with a rotated history, then a foreign file bigger
    than the whole budget. Returns the directory, its live files and the
    rotated names it had before the foreign file came."""
    directory = LogDirectory(tmp_path, max_file_bytes=16384, max_total_bytes=131072, compress=True,
                             report=reports.append)
    lives = [directory.open_live("edgesense.log"), directory.open_live("readings.jsonl")]
    for live in lives:
        write(live, numbered_lines(1000))
    before = rotated_names(directory, "edgesense.log") + rotated_names(directory, "readings.jsonl")
    (tmp_path / "core.dump").write_bytes(os.urandom(150_000))
    time.sleep(RESCAN_SECONDS)  # other files are counted at the next listing, at most this late
    return directory, lives, before


def test_a_foreign_file_over_the_budget_keeps_the_history_and_is_reported_once(tmp_path):
    reports = []
    directory, lives, before = fill_with_foreign_file(tmp_path, reports)
    kept = [live.append(line) for live in lives for line in numbered_lines(1000, start=1000)]
    after = rotated_names(directory, "edgesense.log") + rotated_names(directory, "readings.jsonl")
    assert len(before) >= 4
    assert len(after) >= len(before)
    assert kept.count(False) > 1000
    assert reports == [f"edgesense: a {LINE_BYTES}-byte line does not fit in the 131072-byte budget of "
                       f"{tmp_path}: other files in it use 150000 bytes; dropping lines until there is room"]


def test_writing_resumes_by_itself_when_the_foreign_file_goes(tmp_path):
    reports = []
    directory, lives, _ = fill_with_foreign_file(tmp_path, reports)
    dropped = [live.append(line) for live in lives for line in numbered_lines(1000, start=1000)].count(False)
    os.unlink(tmp_path / "core.dump")
    time.sleep(RESCAN_SECONDS + 0.1)
    last = numbered_lines(1, start=5000)[0]
    assert lives[0].append(last)
    lives[0].flush()
    assert file_lines(os.path.join(directory.path, "edgesense.log"))[-1] == last
    assert reports[1:] == [f"edgesense: room in the budget of {tmp_path} again; {dropped} lines were dropped meanwhile"]
    write(lives[1], numbered_lines(1000, start=6000))
    assert disk_bytes(directory.path) <= 131072


def test_dropping_lines_rescans_the_directory_at_a_bounded_rate(tmp_path, monkeypatch):
    directory, lives, _ = fill_with_foreign_file(tmp_path, [])
    scans = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: scans.append(path) or real_scandir(path))
    started = time.monotonic()
    kept = [lives[0].append(line) for line in numbered_lines(3000)]
    elapsed = time.monotonic() - started
    assert kept.count(False) > 2500
    assert len(scans) <= 2 + elapsed / RESCAN_SECONDS

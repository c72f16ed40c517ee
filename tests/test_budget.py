"""app/budget.py and what `edgesense check` says about the log budget."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.budget import budget_warnings, history_seconds, minimum_for_history
from app.config import SensorConfig
from logging_setup import LogSettings
from logging_setup.directory import gzip_bound

ROOT = Path(__file__).resolve().parent.parent
KIB = 1024


def sensors(*intervals):
    return tuple(SensorConfig(name=f"s{index}", type="load_average", interval=interval)
                 for index, interval in enumerate(intervals))


def check(config_text, folder, prefix=()):
    path = folder / "c.toml"
    path.write_text(config_text)
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([*prefix, sys.executable, "-m", "app", "check", "--config", path], env=environment,
                          cwd="/", capture_output=True, text=True, timeout=30)


def test_the_smallest_budget_keeps_no_history_and_check_says_so(tmp_path):
    config = (f'[logging]\ndir = "{tmp_path}/logs"\nmax_file_bytes = 4096\nmax_total_bytes = 8192\n\n'
              '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 1.0\n')

    result = check(config, tmp_path)

    assert result.returncode == 0, result.stderr
    needed = 4 * KIB + 2 * 4 * KIB + 4 * KIB + gzip_bound(4 * KIB)  # state file, live files, one rotation
    assert result.stdout.splitlines()[-1] == (
        f"  warning: logging.max_total_bytes (8 KiB) holds the live edgesense.log and readings.jsonl but not "
        f"one rotated copy of each (that takes {needed / KIB:.4g} KiB): every rotation deletes the history")


@pytest.mark.parametrize("compress", [True, False])
def test_the_minimum_for_history_is_the_live_files_and_one_rotated_copy_each(compress):
    settings = LogSettings(dir=Path("/x"), max_file_bytes=64 * KIB, compress=compress, reserved_bytes=4 * KIB)
    rotated = 64 * KIB + gzip_bound(64 * KIB) if compress else 2 * 64 * KIB

    assert minimum_for_history(settings) == 4 * KIB + 2 * 64 * KIB + rotated
    just_enough = LogSettings(dir=Path("/x"), max_file_bytes=64 * KIB, compress=compress,
                              reserved_bytes=4 * KIB, max_total_bytes=minimum_for_history(settings))
    assert [line for line in budget_warnings(just_enough, sensors(1.0)) if "warning" in line] == []


def test_history_lasts_longer_with_slower_sensors_and_compression():
    plain = LogSettings(dir=Path("/x"), compress=False)
    compressed = LogSettings(dir=Path("/x"), compress=True)

    fast, slow = history_seconds(plain, sensors(1.0)), history_seconds(plain, sensors(2.0))
    assert slow == pytest.approx(2 * fast, rel=0.01)
    assert history_seconds(compressed, sensors(1.0)) > 3 * fast
    # uncompressed: the room beside the live files over the bytes of a reading's two lines
    room = plain.max_total_bytes - 2 * plain.max_file_bytes
    assert 100 < room / fast < 300


def test_check_says_how_long_the_history_lasts(tmp_path):
    config = f'[logging]\ndir = "{tmp_path}/logs"\n\n[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 1.0\n'

    last = check(config, tmp_path).stdout.splitlines()[-1]

    assert re.fullmatch(r"  history: about \d+ (days|hours) of readings at the configured intervals "
                        r"\(60 readings a minute\)", last), last


def can_unshare_mounts():
    return (os.geteuid() == 0 and shutil.which("unshare") is not None
            and subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0)


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs root and unshare(1) to mount a small file system")
def test_check_warns_when_the_budget_is_bigger_than_the_file_system(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    config = (f'[logging]\ndir = "{card}/logs"\nmax_total_bytes = 4194304\n\n'
              '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 1.0\n')
    small = f'mount --make-rprivate / && mount -t tmpfs -o size=1m edgesense-test "{card}" && exec "$@"'

    result = check(config, tmp_path, prefix=["unshare", "--mount", "sh", "-c", small, "sh"])

    assert result.returncode == 0, result.stderr
    assert (f"  warning: logging.max_total_bytes (4 MiB) is more than the whole file system of {card / 'logs'} "
            "(1 MiB): the card fills up first") in result.stdout.splitlines()

"""Every file in tests/bad_configs/ is a config with known mistakes, named in
its ``# expect: <key path>`` lines. ``edgesense check`` must report exactly
those, one line each, exit 2, create nothing and never show a traceback.
The command runs in-process: its logic is the point, not the process."""

import os
import re
import shutil

import pytest

from helpers import ROOT, edgesense_in_process

CORPUS = sorted((ROOT / "tests" / "bad_configs").glob("*.toml"))


def expected_keys(path):
    return re.findall(rb"^# expect: (.+)$", path.read_bytes(), flags=re.MULTILINE)


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 25
    assert all(expected_keys(path) for path in CORPUS)


@pytest.mark.parametrize("source", CORPUS, ids=[path.stem for path in CORPUS])
def test_bad_config_gets_one_line_per_error_and_exit_2(source, tmp_path):
    config = tmp_path / source.name
    shutil.copyfile(source, config)

    result = edgesense_in_process("check", "--config", config.name, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    expected = [key.decode() for key in expected_keys(source)]
    assert len(lines) == len(expected), result.stderr
    for key in expected:
        matching = [line for line in lines if line.startswith(f"{config.name}: {key}: ")]
        assert len(matching) == 1, (key, result.stderr)
        assert len(matching[0]) > len(f"{config.name}: {key}: ") + 10, "says what is wrong"
    assert sorted(os.listdir(tmp_path)) == [config.name], "check created something"

"""Every file in tests/bad_configs/ is a config with known mistakes, named in
its ``# expect: <key path>: <message>`` lines (``...`` in a message stands
for any text, such as a long list of choices). ``edgesense check`` must
report exactly those, one line each, exit 2, create nothing and never show a
traceback. The command runs in-process: its logic is the point, not the
process."""

import os
import re
import shutil

import pytest

from helpers import ROOT, edgesense_in_process

CORPUS = sorted((ROOT / "tests" / "bad_configs").glob("*.toml"))


def expectations(path):
    """(key path, message pattern) of each ``# expect:`` line."""
    lines = re.findall(rb"^# expect: (.+)$", path.read_bytes(), flags=re.MULTILINE)
    return [tuple(line.decode().split(": ", 1)) for line in lines]


def message_pattern(message):
    """The expected message as a regex: literal, but ``...`` matches any text."""
    return ".*".join(re.escape(part) for part in message.split("..."))


def test_the_corpus_is_large_enough_and_says_what_each_message_is():
    assert len(CORPUS) >= 25
    for path in CORPUS:
        assert expectations(path), path
        assert all(len(expected) == 2 and len(expected[1]) > 10 for expected in expectations(path)), path


def test_a_message_pattern_matches_only_its_words():
    pattern = message_pattern('"lgpoi" is not allowed; expected one of ...; did you mean lgpio?')
    assert re.fullmatch(pattern, '"lgpoi" is not allowed; expected one of lgpio, mock; did you mean lgpio?')
    assert not re.fullmatch(pattern, '"lgpoi" is not allowed; expected one of lgpio, mock')
    assert not re.fullmatch(pattern, '"lgpoi" is not allowed; expected one of x; did you mean lgpioX?')


@pytest.mark.parametrize("source", CORPUS, ids=[path.stem for path in CORPUS])
def test_bad_config_gets_one_line_per_error_and_exit_2(source, tmp_path):
    config = tmp_path / source.name
    shutil.copyfile(source, config)

    result = edgesense_in_process("check", "--config", config.name, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    expected = expectations(source)
    assert len(lines) == len(expected), result.stderr
    for key, message in expected:
        pattern = re.escape(f"{config.name}: {key}: ") + message_pattern(message)
        matching = [line for line in lines if re.fullmatch(pattern, line)]
        assert len(matching) == 1, (f"{key}: {message}", result.stderr)
    assert sorted(os.listdir(tmp_path)) == [config.name], "check created something"

"""The edgesense command: init, check, and bad input of every kind (exit 2,
one line, no traceback). The command's logic runs in-process; a real
subprocess shows that the shell sees the same statuses and output."""

import os
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from helpers import ROOT, edgesense, edgesense_in_process

ONE_SENSOR = '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 10\n'


def test_init_writes_a_config_that_check_accepts(tmp_path):
    init = edgesense_in_process("init", cwd=tmp_path)

    assert init.returncode == 0, init.stderr
    written = tmp_path / "edgesense.toml"
    assert written.read_text() == (ROOT / "app" / "config.example.toml").read_text()
    check = edgesense_in_process("check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines() == [
        f"{written}: OK",
        f"  logs: {tmp_path / 'edgesense-logs'} (level INFO), at most 4 MiB in 256 KiB files, compressed",
        f"  state file: {tmp_path / 'edgesense-logs' / 'edgesense.state.json'}",
        "  start method: forkserver; pin factory: default",
        "  2 sensors:",
        "    load  load_average  every 10 s",
        "    disk  disk_usage    every 60 s, warn above 90",
    ]
    assert sorted(os.listdir(tmp_path)) == ["edgesense.toml"]


def test_init_never_overwrites_without_force(tmp_path):
    target = tmp_path / "mine.toml"
    target.write_text("# my own\n")

    refused = edgesense_in_process("init", str(target), cwd=tmp_path)

    assert refused.returncode == 2
    assert refused.stderr == f"edgesense: {target} exists; not overwritten (use --force)\n"
    assert target.read_text() == "# my own\n"
    forced = edgesense_in_process("init", str(target), "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert target.read_text().startswith("# edgesense configuration")


def test_check_finds_the_config_through_the_environment(tmp_path):
    config = tmp_path / "etc" / "node.toml"
    config.parent.mkdir()
    config.write_text(ONE_SENSOR)

    result = edgesense_in_process("check", cwd=tmp_path, env={"EDGESENSE_CONFIG": str(config)})

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{config}: OK"


def test_check_without_any_config_says_how_to_write_one(tmp_path):
    if Path("/etc/edgesense/config.toml").exists():
        pytest.skip("this machine has /etc/edgesense/config.toml")

    result = edgesense_in_process("check", cwd=tmp_path)

    assert result.returncode == 2
    assert "no config file found" in result.stderr
    assert "edgesense init" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def _fifo(path):
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing.toml", "no such file"),
    (lambda tmp: tmp, "is a directory, not a config file"),
    (lambda tmp: _write(tmp / "c.toml", b"[logging]\nlevel = \"\xff\"\n"),
     "line 2, column 10: not UTF-8 text (byte 0xff); save the file as UTF-8"),
    (lambda tmp: _write(tmp / "c.toml", b"[logging\n"),
     "line 1, column 9: invalid TOML: Expected ']' at the end of a table declaration"),
    (lambda tmp: _fifo(tmp / "c.toml"), "not a regular file (a pipe or a device cannot be a config file)"),
], ids=["missing", "directory", "not-utf8", "syntax", "fifo"])
@pytest.mark.parametrize("command", ["check", "run", "status", "logs"])
def test_unusable_config_file_is_one_line_and_exit_2(tmp_path, make, message, command):
    config = make(tmp_path)

    result = edgesense_in_process(command, "--config", str(config), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == f"{config}: {message}\n"
    assert not (tmp_path / "edgesense-logs").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_config_is_one_line_and_exit_2(tmp_path):
    config = _write(tmp_path / "c.toml", ONE_SENSOR.encode())
    config.chmod(0)

    result = edgesense_in_process("check", "--config", str(config), cwd=tmp_path)

    assert (result.returncode, result.stderr) == (2, f"{config}: cannot read: permission denied\n")


def test_environment_naming_a_missing_file_is_an_error_not_the_demo(tmp_path):
    result = edgesense_in_process("run", cwd=tmp_path, env={"EDGESENSE_CONFIG": str(tmp_path / "typo.toml")})

    assert result.returncode == 2
    assert result.stderr == f"{tmp_path / 'typo.toml'}: no such file\n"


def test_run_with_a_bad_config_starts_nothing(tmp_path):
    config = _write(tmp_path / "c.toml", b'[supervisor]\nstart_method = "thread"\n' + ONE_SENSOR.encode())

    result = edgesense_in_process("run", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == (f'{config}: supervisor.start_method: "thread" is not allowed; '
                             "expected one of fork, forkserver, spawn\n")
    assert sorted(os.listdir(tmp_path)) == ["c.toml"]


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["logs", "-n", "many"], ["logs", "--level", "LOUD"],
                                  ["check", "--nope"]])
def test_bad_command_line_exits_2_with_usage(tmp_path, args):
    result = edgesense_in_process(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert "usage: edgesense" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["run", "check", "init", "status", "logs"])
def test_every_command_has_help(tmp_path, command):
    result = edgesense_in_process(command, "--help", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: edgesense {command}")


def _write(path, data):
    path.write_bytes(data)
    return path


def test_init_into_a_missing_folder_is_a_bad_command_line(tmp_path):
    result = edgesense_in_process("init", "nothere/x.toml", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("edgesense: cannot write nothere/x.toml: there is no folder nothere "
                             "(init does not create folders)\n")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, status", [
    (["check"], 0), (["status"], 1), (["logs"], 1), (["frobnicate"], 2), ([], 2),
    (["check", "--config", "missing.toml"], 2), (["init"], 2), (["--version"], 0),
])
def test_the_shell_sees_the_status_and_output_of_the_in_process_command(tmp_path, args, status):
    (tmp_path / "edgesense.toml").write_text(ONE_SENSOR)

    real = edgesense(*args, cwd=tmp_path)
    in_process = edgesense_in_process(*args, cwd=tmp_path)

    assert real.returncode == in_process.returncode == status
    assert (real.stdout, real.stderr) == (in_process.stdout, in_process.stderr)
    assert "Traceback" not in real.stderr


@pytest.mark.parametrize("typed", ["node.toml", "./node.toml", "etc/../node.toml"])
def test_check_names_the_config_as_typed(tmp_path, typed):
    (tmp_path / "etc").mkdir()
    (tmp_path / "node.toml").write_text(ONE_SENSOR)

    result = edgesense_in_process("check", "--config", typed, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{typed}: OK"


def test_version_is_the_installed_one_and_the_projects(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    result = edgesense_in_process("--version", cwd=tmp_path)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"edgesense {metadata.version('edgesense')}\n" == f"edgesense {project['version']}\n"

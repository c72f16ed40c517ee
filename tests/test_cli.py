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
        "  history: about 31 days of readings at the configured intervals (7 readings a minute)",
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


def test_check_prints_the_broker_and_the_topics_of_an_mqtt_table(tmp_path):
    config = tmp_path / "edgesense.toml"
    config.write_text('[mqtt]\nhost = "hub.local"\nnode = "shed"\ntls = true\nca_file = "hub-ca.crt"\n\n'
                      + ONE_SENSOR)

    result = edgesense_in_process("check", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("  mqtt: "))
    assert lines[start:start + 4] == [
        f"  mqtt: mqtts://hub.local:8883 as node shed, trusting {tmp_path / 'hub-ca.crt'}, keepalive 30 s",
        "    readings: edgesense/shed/<sensor>/reading (QoS 1); latest: edgesense/shed/<sensor>/state (retained)",
        "    availability: edgesense/shed/availability (retained, and the last will)",
        "    Home Assistant discovery: homeassistant/<component>/shed/<sensor>/config, sent again on "
        "homeassistant/status",
    ]


def hide_paho(monkeypatch):
    """paho-mqtt as a Python without it sees it: a None in sys.modules makes
    find_spec return None and an import raise ModuleNotFoundError."""
    import sys

    monkeypatch.setitem(sys.modules, "paho", None)


def test_check_warns_once_when_mqtt_is_set_and_paho_cannot_be_imported(tmp_path, monkeypatch):
    import sys

    config = tmp_path / "edgesense.toml"
    config.write_text('[mqtt]\nhost = "hub.local"\n\n' + ONE_SENSOR)
    hide_paho(monkeypatch)

    result = edgesense_in_process("check", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"edgesense: warning: [mqtt] is set, but paho-mqtt is not installed for {sys.executable}, so the "
        f"publisher cannot send anything; install it with: {sys.executable} -m pip install 'paho-mqtt>=2.0,<3'\n")
    assert result.stdout.splitlines()[0] == f"{config}: OK"


def test_check_says_nothing_of_paho_without_mqtt(tmp_path, monkeypatch):
    (tmp_path / "edgesense.toml").write_text(ONE_SENSOR)
    hide_paho(monkeypatch)

    result = edgesense_in_process("check", cwd=tmp_path)

    assert (result.returncode, result.stderr) == (0, "")


def test_version_is_the_installed_one_and_the_projects(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    result = edgesense_in_process("--version", cwd=tmp_path)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"edgesense {metadata.version('edgesense')}\n" == f"edgesense {project['version']}\n"


def installed_unit_root(root, drop_in=None):
    """``root`` laid out as install.sh lays out the unit and its config
    (with [mqtt]), with ``drop_in`` from deploy/ when given."""
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "edgesense.service").write_bytes((ROOT / "deploy/edgesense.service").read_bytes())
    if drop_in is not None:
        (units / "edgesense.service.d").mkdir()
        (units / "edgesense.service.d" / drop_in).write_bytes(
            (ROOT / "deploy/edgesense.service.d" / drop_in).read_bytes())
    config = root / "etc/edgesense/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[logging]\ndir = "/var/log/edgesense"\n\n[supervisor]\n'
                      'state_file = "/var/lib/edgesense/state.json"\n\n[mqtt]\nhost = "hub.local"\n\n'
                      + ONE_SENSOR)
    return config


def check_under_the_unit_at(root, config, monkeypatch):
    """``edgesense check`` of ``config`` with the installed units looked up under ``root``."""
    from app import cli, service_unit

    monkeypatch.setattr(cli, "unit_for_config", lambda path: service_unit.unit_for_config(path, root=root))
    return edgesense_in_process("check", "--config", str(config), cwd=root)


def test_check_warns_once_when_mqtt_meets_a_unit_without_network(tmp_path, monkeypatch):
    config = installed_unit_root(tmp_path)

    result = check_under_the_unit_at(tmp_path, config, monkeypatch)

    assert result.returncode == 0, result.stderr
    unit = tmp_path / "etc/systemd/system/edgesense.service"
    assert result.stderr == (
        "edgesense: warning: [mqtt] is set, but the service has no network to reach hub.local:1883 "
        "(PrivateNetwork=yes, RestrictAddressFamilies= without AF_INET and AF_INET6, IPAddressDeny=any "
        f"in {unit} and its drop-ins): re-run install.sh, which adds the drop-in "
        f"{unit}.d/network.conf for a config with [mqtt] (or put PrivateNetwork=no, "
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 and IPAddressDeny= in one: sudo systemctl edit "
        "edgesense), then sudo systemctl restart edgesense; a reload does not change the sandbox\n")
    assert result.stdout.splitlines()[0] == f"{config}: OK"


def test_check_of_the_installed_config_without_paho_says_to_re_run_install_sh(tmp_path, monkeypatch):
    import sys

    config = installed_unit_root(tmp_path, drop_in="network.conf")
    hide_paho(monkeypatch)

    result = check_under_the_unit_at(tmp_path, config, monkeypatch)

    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"edgesense: warning: [mqtt] is set, but paho-mqtt is not installed for {sys.executable}, so the "
        "publisher cannot send anything; re-run install.sh, which installs it for a config with [mqtt] "
        f"(or: sudo {sys.executable} -m pip install 'paho-mqtt>=2.0,<3')\n")


def test_check_says_nothing_of_the_network_when_the_drop_in_opens_it(tmp_path, monkeypatch):
    config = installed_unit_root(tmp_path, drop_in="network.conf")

    result = check_under_the_unit_at(tmp_path, config, monkeypatch)

    assert (result.returncode, result.stderr) == (0, "")


def test_check_says_nothing_of_the_network_without_mqtt_or_for_a_config_the_unit_does_not_run(
        tmp_path, monkeypatch):
    config = installed_unit_root(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text(config.read_text())
    config.write_text(config.read_text().replace('[mqtt]\nhost = "hub.local"\n', ""))

    assert check_under_the_unit_at(tmp_path, config, monkeypatch).stderr == ""
    assert check_under_the_unit_at(tmp_path, other, monkeypatch).stderr == ""

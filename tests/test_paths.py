"""app/paths.py: whether the service can write its folders, tried for real
for this process, judged from the modes for the service's user; and what
`check` and `run` make of a folder that cannot be created."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from app.config import ConfigError, load_config
from app.paths import ServiceUser, judgement_notes

ROOT = Path(__file__).resolve().parent.parent
SENSOR = '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 1.0\n'
NOBODY = 65534


def write_config(folder, log_dir):
    path = folder / "c.toml"
    path.write_text(f'[logging]\ndir = "{log_dir}"\n\n' + SENSOR)
    return path


def edgesense(*args, prefix=(), timeout=30):
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    environment.pop("EDGESENSE_CONFIG", None)
    return subprocess.run([*prefix, sys.executable, "-m", "app", *args], env=environment, cwd="/",
                          capture_output=True, text=True, timeout=timeout)


def errors_of(path, **options):
    with pytest.raises(ConfigError) as raised:
        load_config(path, **options)
    return raised.value.errors


def can_unshare_mounts():
    return (os.geteuid() == 0 and shutil.which("unshare") is not None
            and subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0)


# --- folders that cannot be created, for every user (root too) -----------------


@pytest.mark.parametrize("log_dir, message", [
    # root may write /proc by its permission bits, yet it takes no files
    ("/proc/edgesense-logs", '"/proc/edgesense-logs" cannot be created: /proc '
                             + ("is on a proc file system, which takes no log files" if os.geteuid() == 0
                                else "is not writable")),
    ("/proc", '"/proc" ' + ("is on a proc file system, which takes no log files" if os.geteuid() == 0
                            else "is not writable")),
    ("/etc/hostname/logs", '"/etc/hostname/logs" cannot be created: /etc/hostname is not a folder'),
    ("/tmp/" + "n" * 300, f'"/tmp/{"n" * 300}" cannot be used: File name too long'),
])
def test_check_and_run_refuse_a_folder_that_cannot_be_created(tmp_path, log_dir, message):
    path = write_config(tmp_path, log_dir)

    check = edgesense("check", "--config", path)
    run = edgesense("run", "--config", path)

    line = f"{path}: logging.dir: {message}\n"
    assert (check.returncode, check.stdout, check.stderr) == (2, "", line)
    assert (run.returncode, run.stdout, run.stderr) == (2, "", line)


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs root and unshare(1) for a read-only mount")
def test_check_and_run_refuse_a_log_folder_on_a_read_only_mount_even_as_root(tmp_path):
    mounted = tmp_path / "card"
    mounted.mkdir()
    path = write_config(tmp_path, mounted / "logs")
    read_only = f'mount --make-rprivate / && mount --bind "{mounted}" "{mounted}" && ' \
                f'mount -o remount,bind,ro "{mounted}" && exec "$@"'

    check = edgesense("check", "--config", path, prefix=["unshare", "--mount", "sh", "-c", read_only, "sh"])
    run = edgesense("run", "--config", path, prefix=["unshare", "--mount", "sh", "-c", read_only, "sh"])

    line = f'{path}: logging.dir: "{mounted / "logs"}" cannot be created: {mounted} is on a read-only file system\n'
    assert (check.returncode, check.stdout, check.stderr) == (2, "", line)
    assert (run.returncode, run.stdout, run.stderr) == (2, "", line)
    assert list(mounted.iterdir()) == []


def test_an_existing_folder_is_judged_without_writing_in_it(tmp_path):
    """A check beside a running service changes nothing in its folder."""
    logs = tmp_path / "logs"
    logs.mkdir()
    before = os.stat(logs).st_mtime_ns

    load_config(write_config(tmp_path, logs))

    assert (os.listdir(logs), os.stat(logs).st_mtime_ns) == ([], before)


def test_the_probe_for_a_missing_folder_leaves_nothing_behind(tmp_path):
    load_config(write_config(tmp_path, tmp_path / "missing" / "logs"))

    assert sorted(os.listdir(tmp_path)) == ["c.toml"]


# --- judged for another user -----------------------------------------------------


@pytest.fixture
def root_owned_folder():
    """0770, owned by root and group nogroup (the group of nobody), in a
    folder anyone may traverse (pytest's are root's alone)."""
    parent = Path(tempfile.mkdtemp(prefix="edgesense-paths-"))
    parent.chmod(0o755)
    folder = parent / "logs"
    folder.mkdir()
    folder.chmod(0o770)
    os.chown(folder, 0, NOBODY)
    yield folder
    shutil.rmtree(parent)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder away")
def test_a_folder_is_judged_for_the_service_user_not_for_this_process(tmp_path, root_owned_folder):
    path = write_config(tmp_path, root_owned_folder)
    stranger = ServiceUser("nobody", "User= of the test's unit")
    root_owned_folder.chmod(0o750)

    assert errors_of(path, service_user=stranger) == [
        f'{path}: logging.dir: "{root_owned_folder}" is not writable for user nobody (User= of the test\'s unit)']
    assert load_config(path).logging.dir == root_owned_folder  # root itself may write it


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder away")
def test_a_member_of_the_folders_group_may_write_it(tmp_path, root_owned_folder):
    """nobody's primary group is the folder's group, and the group may write."""
    path = write_config(tmp_path, root_owned_folder)

    config = load_config(path, service_user=ServiceUser("nobody", "User= of the test's unit"))

    assert config.logging.dir == root_owned_folder


def test_a_user_that_does_not_exist_here_is_a_note_not_an_error(tmp_path):
    path = write_config(tmp_path, tmp_path / "logs")
    ghost = ServiceUser("edgesense-nobody-here", "User= of the test's unit")

    config = load_config(path, service_user=ghost)

    assert judgement_notes([config.logging.dir], ghost) == [
        f"cannot judge whether user edgesense-nobody-here (User= of the test's unit) may write "
        f"{tmp_path / 'logs'}: there is no user edgesense-nobody-here here"]


def test_systemds_own_folders_are_always_writable_for_the_service(tmp_path):
    """LogsDirectory= makes and chowns the folder at start, whatever is there now."""
    own = tmp_path / "var-log" / "edgesense"
    path = write_config(tmp_path, own)
    service = ServiceUser("nobody", "User= of the test's unit", own_dirs=(own,), writable=(own,))
    (tmp_path / "var-log").mkdir(mode=0o700)

    assert load_config(path, service_user=service).logging.dir == own


def test_a_folder_outside_what_protect_system_strict_leaves_writable_is_an_error(tmp_path):
    path = write_config(tmp_path, tmp_path / "logs")
    service = ServiceUser("root", "User= of the test's unit", own_dirs=(Path("/var/log/edgesense"),),
                          writable=(Path("/var/log/edgesense"), Path("/srv/edgesense")))

    assert errors_of(path, service_user=service) == [
        f'{path}: logging.dir: "{tmp_path / "logs"}" is read-only for the service (ProtectSystem=strict in its '
        f"unit): add ReadWritePaths={tmp_path / 'logs'} in a drop-in (systemctl edit edgesense)"]

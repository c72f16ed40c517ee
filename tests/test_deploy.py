"""deploy/: the systemd unit, install.sh and firstboot.sh, run for real.

install.sh runs with --root into a temporary folder: it creates a real venv
(from /usr/bin/python3, as on a Pi) and installs real wheels into it, offline,
from a wheelhouse built once per session with `pip wheel` (which reuses pip's
cache). Nothing on this machine outside the tests' temporary folders is
touched: what must look like the real system runs in a private mount namespace.
"""

import ctypes.util
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

from app.config import SupervisorSettings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
INSTALL = DEPLOY / "install.sh"
FIRSTBOOT = DEPLOY / "firstboot.sh"
UNIT = DEPLOY / "edgesense.service"
FIRSTBOOT_UNIT = DEPLOY / "edgesense-firstboot.service"
SYSUSERS = DEPLOY / "sysusers.d" / "edgesense.conf"

VENV = Path("opt/edgesense/venv")
CONFIG = Path("etc/edgesense/config.toml")
INSTALLED_UNIT = Path("etc/systemd/system/edgesense.service")
INSTALLED_SYSUSERS = Path("usr/lib/sysusers.d/edgesense.conf")
COMMAND_LINK = Path("usr/local/bin/edgesense")
LOG_DIR = Path("var/log/edgesense")
STATE_DIR = Path("var/lib/edgesense")
WANTS_FIRSTBOOT = Path("etc/systemd/system/multi-user.target.wants/edgesense-firstboot.service")

PACKAGED_EXAMPLE = ROOT / "app" / "config.example.toml"
# Left in a checkout by earlier builds and runs: never part of a wheel.
BUILD_LEFTOVERS = (".git", "build", "*.egg-info", ".venv", "__pycache__", ".pytest_cache", "edgesense-logs")

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (apt install systemd; .ci/run does)",
)


def venv_python():
    """The Python install.sh builds the venv from: the system's, as on a Pi."""
    system = Path("/usr/bin/python3")
    if system.exists() and run([system, "-c", "import ensurepip, venv"]).returncode == 0:
        return str(system)
    return sys.executable


def run(args, timeout=60):
    """Runs outside the checkout, so `import app` finds the installed package."""
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd="/"
    )


def install(root, *options, timeout=60):
    return run(["sh", INSTALL, "--root", root, "--python", venv_python(), *options], timeout=timeout)


def ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def can_unshare_mounts():
    return (os.geteuid() == 0 and shutil.which("unshare") is not None
            and run(["unshare", "--mount", "true"]).returncode == 0)


def tree(root):
    """Every path under root with its kind and content digest (links: target)."""
    listing = {}
    for path in sorted(Path(root).rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            listing[relative] = "link " + os.readlink(path)
        elif path.is_dir():
            listing[relative] = "dir %o" % (path.stat().st_mode & 0o7777)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            listing[relative] = "file %o %s" % (path.stat().st_mode & 0o7777, digest)
    return listing


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    """edgesense's wheel (from this checkout) and its dependencies' wheels,
    paho-mqtt's (the extra "mqtt") included."""
    source = tmp_path_factory.mktemp("source") / "edgesense"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    folder = tmp_path_factory.mktemp("wheels")
    ok(run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", folder, f"{source}[mqtt]"],
           timeout=110))
    return folder


@pytest.fixture(scope="session")
def wheel(wheelhouse):
    (found,) = wheelhouse.glob("edgesense-*.whl")
    return found


def install_offline(root, wheel, wheelhouse):
    return ok(install(root, "--wheel", wheel, "--wheelhouse", wheelhouse))


def open_folder():
    """A temporary folder any user may traverse (pytest's are root's alone), so
    that the service can run from it as an unprivileged user."""
    folder = Path(tempfile.mkdtemp(prefix="edgesense-deploy-"))
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def installed(wheel, wheelhouse):
    """A root laid out by one `install.sh --root` for the session: tests that
    take it leave it as they found it (fresh_install is for the others)."""
    folder = open_folder()
    root = folder / "root"
    install_offline(root, wheel, wheelhouse)
    yield root
    shutil.rmtree(folder)


@pytest.fixture
def fresh_install(tmp_path, installed):
    """A test's own copy of ``installed``: the same files, modes and links.
    Nothing installed names the root it was laid out at (see
    test_nothing_installed_under_a_root_names_it), so the copy is what
    `install.sh --root` lays out at this one, in a fraction of the time."""
    root = tmp_path / "root"
    ok(run(["cp", "-a", installed, root]))
    return root


# --- the unit ------------------------------------------------------------------


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(fresh_install):
    """verify resolves ExecStart= and the default dependencies under --root;
    the root gets this machine's targets and kill(1), the rest is the install."""
    result = verify_unit_at(fresh_install)

    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@needs_systemd_analyze
def test_firstboot_unit_passes_systemd_analyze_verify():
    result = run(["systemd-analyze", "verify", FIRSTBOOT_UNIT])
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@needs_systemd_analyze
def test_unit_exposure_is_at_most_1_5():
    result = ok(run(["systemd-analyze", "security", "--offline=true", "--no-pager", UNIT]))
    (exposure,) = re.findall(r"Overall exposure level for edgesense\.service: (\d+\.\d+)", result.stdout)
    assert float(exposure) <= 1.5, result.stdout


def unit_settings(path):
    settings = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_keeps_gpio_spi_and_i2c_reachable():
    settings = unit_settings(UNIT)
    assert settings["PrivateDevices"] == ["no"]
    assert settings["DevicePolicy"] == ["closed"]
    assert settings["DeviceAllow"] == ["char-gpiochip rw", "char-*gpiomem* rw", "char-spi rw", "char-i2c rw"]
    assert settings["SupplementaryGroups"] == ["gpio spi i2c"]
    assert settings["Environment"] == ["LG_WD=%t/edgesense"]
    assert settings["RuntimeDirectory"] == ["edgesense"]


def test_unit_lets_the_supervisor_order_the_stop():
    settings = unit_settings(UNIT)
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["KillMode"] == ["mixed"]
    stop_timeout = int(settings["TimeoutStopSec"][0].removesuffix("s"))
    # the workers' stop_timeout, then their kill, the supervisor's last line and the drain
    assert stop_timeout >= 4 * SupervisorSettings().stop_timeout
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["ExecStart"] == ["/opt/edgesense/venv/bin/edgesense run --config /etc/edgesense/config.toml"]


@needs_systemd_analyze
def test_sysusers_declaration_puts_edgesense_in_the_device_groups(tmp_path):
    (tmp_path / "etc").mkdir()
    ok(run(["systemd-sysusers", f"--root={tmp_path}", SYSUSERS]))

    passwd = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert passwd["edgesense"][6] in ("/usr/sbin/nologin", "/sbin/nologin")
    for group in ("gpio", "spi", "i2c"):
        assert groups[group][3].split(",") == ["edgesense"]


# --- install.sh --root -----------------------------------------------------------


def test_install_lays_out_venv_config_unit_and_user(installed):
    python = installed / VENV / "bin/python"
    where = ok(run([python, "-c", "import app, gpiozero, schedule; print(app.__file__)"])).stdout
    assert where.startswith(str(installed / VENV / "lib"))
    assert "include-system-site-packages = true" in (installed / VENV / "pyvenv.cfg").read_text()
    assert (installed / VENV / "bin/edgesense").is_file()

    config = tomllib.loads((installed / CONFIG).read_text())
    assert config["logging"]["dir"] == "/var/log/edgesense"
    assert config["supervisor"]["state_file"] == "/var/lib/edgesense/state.json"

    assert (installed / INSTALLED_UNIT).read_bytes() == UNIT.read_bytes()
    assert (installed / INSTALLED_SYSUSERS).read_bytes() == SYSUSERS.read_bytes()
    assert os.readlink(installed / COMMAND_LINK) == "/opt/edgesense/venv/bin/edgesense"
    # nothing started, nobody created
    assert not (installed / "var").exists()
    assert not (installed / "etc/passwd").exists()


def test_second_install_changes_nothing(installed, wheel, wheelhouse):
    before = tree(installed)

    result = install_offline(installed, wheel, wheelhouse)

    assert tree(installed) == before
    assert "package: kept" in result.stdout
    assert "config: kept" in result.stdout
    assert "unit: kept" in result.stdout


def names_of(root):
    """The files under ``root`` whose content or link target names ``root``
    (as it is, or quoted the way a URL quotes it)."""
    spellings = {str(root).encode(), quote(str(root)).encode()}
    found = []
    for path in sorted(Path(root).rglob("*")):
        if path.is_symlink():
            content = os.readlink(path).encode()
        elif path.is_file():
            content = path.read_bytes()
        else:
            continue
        if any(spelling in content for spelling in spellings):
            found.append(str(path.relative_to(root)))
    return found


def test_nothing_installed_under_a_root_names_it(installed):
    """Scripts' interpreter lines, pyvenv.cfg, bytecode, the unit, the config,
    the sysusers file: an image built at a scratch root is the same as one
    built at /."""
    assert names_of(installed) == []
    assert (installed / VENV / "bin/edgesense").read_text().startswith("#!/opt/edgesense/venv/bin/python\n")


# The image as a card is used: its root at / (a chroot of a tmpfs where each
# top-level folder is an overlay of the image's over this machine's, so the
# image brings edgesense and this machine the OS and its Python; writes land in
# the tmpfs and vanish with the mount namespace).
IMAGE_ROOT = """\
set -eu
: "${IMAGE:?}" "${TOP:?}" "${INSIDE:?}"
mount --make-rprivate /
mount -t tmpfs edgesense-test "$TOP"
NEW=$TOP/root
mkdir "$NEW" "$TOP/upper" "$TOP/work"
for name in $( (ls -A /; ls -A "$IMAGE") | sort -u); do
    case $name in
        proc) mkdir "$NEW/proc"; mount -t proc proc "$NEW/proc"; continue ;;
        dev) mkdir "$NEW/dev"; mount --rbind /dev "$NEW/dev"; continue ;;
        sys|tmp|run) mkdir "$NEW/$name"; mount -t tmpfs edgesense-test "$NEW/$name"; continue ;;
    esac
    if [ -L "/$name" ]; then
        ln -s "$(readlink "/$name")" "$NEW/$name"
        continue
    fi
    lower=
    for from in "$IMAGE/$name" "/$name"; do
        [ ! -d "$from" ] || [ -L "$from" ] || lower=${lower:+$lower:}$from
    done
    [ -n "$lower" ] || continue
    mkdir "$NEW/$name" "$TOP/upper/$name" "$TOP/work/$name"
    mount -t overlay edgesense-test \\
        -o "lowerdir=$lower,upperdir=$TOP/upper/$name,workdir=$TOP/work/$name" "$NEW/$name"
done
cd "$NEW"
exec chroot "$NEW" /bin/sh -c "cd / && $INSIDE"
"""


def can_overlay():
    return can_unshare_mounts() and "overlay" in Path("/proc/filesystems").read_text().split()


def in_image(image, inside, tmp_path):
    """Runs the shell commands ``inside`` as root of a system whose / is ``image``."""
    top = tmp_path / "image-mounts"
    top.mkdir()
    environment = dict(os.environ, IMAGE=str(image), TOP=str(top), INSIDE=inside)
    return subprocess.run(["unshare", "--mount", "sh", "-c", IMAGE_ROOT], env=environment,
                          capture_output=True, text=True, timeout=60, cwd="/")


@pytest.fixture
def image_at_a_scratch_root(tmp_path, wheel, wheelhouse):
    """An image built at a path with a space, where pip writes a two-line
    interpreter stanza instead of #! (a path with a space cannot follow #!)."""
    root = open_folder() / "card root"
    install_offline(root, wheel, wheelhouse)
    yield root
    shutil.rmtree(root.parent)


@pytest.mark.skipif(not can_overlay(), reason="needs root, unshare(1) and overlayfs to put the image at /")
def test_an_image_built_at_a_scratch_root_runs_at_slash(image_at_a_scratch_root, tmp_path):
    assert names_of(image_at_a_scratch_root) == []

    result = in_image(image_at_a_scratch_root, "/opt/edgesense/venv/bin/python -c 'import sys; print(sys.prefix)'"
                      " && /opt/edgesense/venv/bin/edgesense check --config /etc/edgesense/config.toml"
                      " && edgesense check", tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "/opt/edgesense/venv"
    assert [line for line in lines if line.endswith(": OK")] == ["/etc/edgesense/config.toml: OK"] * 2
    assert result.stderr == ""


# What the first boot and the first start do on the card (systemd-sysusers, the
# unit's LogsDirectory= and StateDirectory=), then an operator in the group
# edgesense checks the config the way README's routine does.
OPERATOR_CHECKS = """\
systemd-sysusers >/dev/null 2>&1
install -d -m 0750 -o edgesense -g edgesense /var/log/edgesense /var/lib/edgesense
useradd --no-create-home --user-group pi-admin
usermod -a -G edgesense pi-admin
as_operator() { setpriv --reuid=pi-admin --regid=pi-admin --init-groups "$@"; }
as_operator edgesense check && echo "check: exit 0"
sed -i 's|^dir = .*|dir = "/srv/edgesense-logs"|' /etc/edgesense/config.toml
as_operator edgesense check || echo "check: exit $?"
"""


@pytest.mark.skipif(not can_overlay() or not shutil.which("setpriv") or not shutil.which("systemd-sysusers"),
                    reason="needs root, unshare(1), overlayfs, setpriv(1) and systemd-sysusers to boot the image")
def test_an_operator_checks_the_installed_config_for_the_services_user(installed, tmp_path):
    result = in_image(installed, OPERATOR_CHECKS, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "/etc/edgesense/config.toml: OK"
    assert "  folders judged for user edgesense (User= of /etc/systemd/system/edgesense.service)" in lines
    assert "check: exit 0" in lines
    assert lines[-1] == "check: exit 2"
    assert result.stderr == (
        '/etc/edgesense/config.toml: logging.dir: "/srv/edgesense-logs" is read-only for the service '
        "(ProtectSystem=strict in its unit): add ReadWritePaths=/srv/edgesense-logs in a drop-in "
        "(systemctl edit edgesense)\n")


def test_default_config_is_the_packaged_example_with_service_paths(installed):
    example = PACKAGED_EXAMPLE.read_text().splitlines()
    written = (installed / CONFIG).read_text().splitlines()
    changed = [(a, b) for a, b in zip(example, written) if a != b]
    assert len(example) == len(written)
    assert [b for _, b in changed] == ['dir = "/var/log/edgesense"', 'state_file = "/var/lib/edgesense/state.json"']


def test_install_keeps_an_existing_config(fresh_install, wheel, wheelhouse, tmp_path):
    edited = (fresh_install / CONFIG).read_text() + "# edited by hand\n"
    (fresh_install / CONFIG).write_text(edited)
    other = tmp_path / "other.toml"
    other.write_text("[logging]\n")

    result = ok(install(fresh_install, "--wheel", wheel, "--wheelhouse", wheelhouse, "--config", other))

    assert (fresh_install / CONFIG).read_text() == edited
    assert "config: kept" in result.stdout


def test_replace_config_keeps_the_old_one_and_is_idempotent(fresh_install, wheel, wheelhouse, tmp_path):
    original = (fresh_install / CONFIG).read_text()
    mine = tmp_path / "mine.toml"
    mine.write_text('[logging]\ndir = "here"\n\n[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 5.0\n')
    options = ["--wheel", wheel, "--wheelhouse", wheelhouse, "--config", mine, "--replace-config"]

    first = ok(install(fresh_install, *options))
    second = ok(install(fresh_install, *options))

    assert (fresh_install / CONFIG).read_text() == mine.read_text().replace('"here"', '"/var/log/edgesense"')
    assert (fresh_install / CONFIG.with_suffix(".toml.old")).read_text() == original
    assert f"config: replacing {fresh_install / CONFIG}" in first.stdout
    assert f"config: kept {fresh_install / CONFIG} (the same as {mine})" in second.stdout


SENSOR = '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 5.0\n'


def service_config(text):
    """What install.sh makes of a config: installer.py's ``config``."""
    source = Path(tempfile.mkdtemp()) / "config.toml"
    try:
        source.write_text(text)
        return run([sys.executable, DEPLOY / "installer.py", "config", source,
                    "/var/log/edgesense", "/var/lib/edgesense/state.json"])
    finally:
        shutil.rmtree(source.parent)


@pytest.mark.parametrize("logging", [
    '[logging]\ndir = "logs"\n',
    "[logging]\ndir='logs'\n",
    '[logging]\n  dir = "./logs"  # beside the config\n',
    '[ logging ] # the log files\n"dir" = "~/logs"\nlevel = "DEBUG"\n',
    '[logging]\nlevel = "DEBUG"\n',
    '[logging]\n# dir = "edgesense-logs"\n',
    "",
])
def test_every_relative_or_missing_log_dir_becomes_the_services(logging):
    result = ok(service_config(logging + SENSOR))

    installed = tomllib.loads(result.stdout)
    original = tomllib.loads(logging + SENSOR)
    assert installed["logging"] == dict(original.get("logging", {}), dir="/var/log/edgesense")
    assert installed["sensor"] == original["sensor"]
    assert "supervisor" not in installed


def test_an_absolute_log_dir_and_state_file_are_kept():
    text = '[logging]\ndir = "/srv/logs"\n\n[supervisor]\nstate_file = "/srv/state.json"\n' + SENSOR
    assert ok(service_config(text)).stdout == text


def test_a_log_dir_that_cannot_be_rewritten_line_by_line_is_refused(installed, wheel, wheelhouse, tmp_path):
    mine = tmp_path / "inline.toml"
    mine.write_text('logging = { dir = "logs" }\n' + SENSOR)
    before = tree(installed)

    result = install(installed, "--wheel", wheel, "--wheelhouse", wheelhouse, "--config", mine, "--replace-config")

    assert result.returncode == 1
    assert result.stderr == (f"install.sh: error: {mine}: cannot set [logging] dir to /var/log/edgesense line by "
                             'line; write dir = "/var/log/edgesense" in its [logging] section\n')
    assert tree(installed) == before


def another_wheel(wheel, folder):
    """``wheel`` with one more module: another package to upgrade to."""
    folder.mkdir()
    upgraded = folder / wheel.name
    with zipfile.ZipFile(wheel) as original, zipfile.ZipFile(upgraded, "w") as copy:
        for item in original.infolist():
            copy.writestr(item, original.read(item))
        copy.writestr("app/upgraded.py", "")
    return upgraded


def test_a_config_that_fails_its_check_replaces_nothing(fresh_install, wheel, wheelhouse, tmp_path):
    upgraded = another_wheel(wheel, tmp_path / "upgrade")
    broken = tmp_path / "broken.toml"
    broken.write_text('[logging]\ndir = "logs"\n\n[[sensor]]\nname = "load"\ntype = "load_avg"\ninterval = 5.0\n')
    before = tree(fresh_install)

    result = install(fresh_install, "--wheel", upgraded, "--wheelhouse", wheelhouse, "--config", broken,
                     "--replace-config")

    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f'{broken}: sensor "load".type: unknown sensor type')
    assert errors[-1] == f"install.sh: error: {broken} has errors (above): nothing installed was replaced"
    assert tree(fresh_install) == before


CUSTOM_TYPE = """\
class Greenhouse:
    def read(self):
        return 21.5
"""
CUSTOM_CONFIG = '[[sensor]]\nname = "greenhouse"\ntype = "garden:Greenhouse"\ninterval = 30.0\n'


def test_a_custom_type_is_checked_with_the_drop_ins_pythonpath(fresh_install, wheel, wheelhouse, tmp_path):
    """The check sees what the service will see: the unit's drop-in puts the
    custom type's folder on PYTHONPATH (a path on the image)."""
    (fresh_install / "opt/edgesense-local").mkdir(parents=True)
    (fresh_install / "opt/edgesense-local/garden.py").write_text(CUSTOM_TYPE)
    mine = tmp_path / "garden.toml"
    mine.write_text(CUSTOM_CONFIG)
    options = ["--wheel", another_wheel(wheel, tmp_path / "upgrade"), "--wheelhouse", wheelhouse,
               "--config", mine, "--replace-config"]
    before = tree(fresh_install)

    without = install(fresh_install, *options)
    assert without.returncode == 1
    assert 'sensor "greenhouse".type' in without.stderr.splitlines()[0]
    assert tree(fresh_install) == before

    drop_ins = fresh_install / "etc/systemd/system/edgesense.service.d"
    drop_ins.mkdir()
    (drop_ins / "local.conf").write_text("[Service]\nEnvironment=PYTHONPATH=/opt/edgesense-local\n")
    result = ok(install(fresh_install, *options))

    assert "greenhouse  garden:Greenhouse  every 30 s" in result.stdout
    assert tomllib.loads((fresh_install / CONFIG).read_text())["sensor"][0]["type"] == "garden:Greenhouse"
    assert f"package: installing {wheel.name}" in result.stdout
    assert list((fresh_install / "opt/edgesense-local").iterdir()) == [fresh_install / "opt/edgesense-local/garden.py"]


def test_a_venv_of_another_python_version_is_made_anew(fresh_install, wheel, wheelhouse):
    """After an OS upgrade the venv's python is another minor version: the
    stand-in below answers like a 3.9 would."""
    python = fresh_install / VENV / "bin/python"
    python.unlink()
    python.write_text("#!/bin/sh\necho 3 9\n")
    python.chmod(0o755)

    result = ok(install(fresh_install, "--wheel", wheel, "--wheelhouse", wheelhouse))

    assert f"venv: creating {fresh_install / VENV}" in result.stdout
    assert f"package: installing {wheel.name}" in result.stdout
    assert "config: kept" in result.stdout
    ok(run([python, "-c", "import app, gpiozero"]))


def test_uninstall_keeps_config_logs_and_state(fresh_install):
    (fresh_install / LOG_DIR).mkdir(parents=True)
    (fresh_install / LOG_DIR / "edgesense.log").write_text("a line\n")
    (fresh_install / STATE_DIR).mkdir(parents=True)
    (fresh_install / STATE_DIR / "state.json").write_text("{}\n")
    config = (fresh_install / CONFIG).read_text()

    ok(run(["sh", INSTALL, "--root", fresh_install, "--uninstall"]))

    assert not (fresh_install / "opt/edgesense").exists()
    assert not (fresh_install / INSTALLED_UNIT).exists()
    assert not (fresh_install / COMMAND_LINK).is_symlink()
    assert (fresh_install / CONFIG).read_text() == config
    assert (fresh_install / LOG_DIR / "edgesense.log").read_text() == "a line\n"
    assert (fresh_install / STATE_DIR / "state.json").read_text() == "{}\n"


def test_purge_removes_config_logs_and_state(fresh_install):
    (fresh_install / LOG_DIR).mkdir(parents=True)
    (fresh_install / LOG_DIR / "edgesense.log").write_text("a line\n")
    (fresh_install / STATE_DIR).mkdir(parents=True)

    result = ok(run(["sh", INSTALL, "--root", fresh_install, "--purge"]))

    for gone in ("opt/edgesense", INSTALLED_UNIT, COMMAND_LINK, CONFIG.parent, LOG_DIR, STATE_DIR, INSTALLED_SYSUSERS):
        assert not (fresh_install / gone).exists() and not (fresh_install / gone).is_symlink(), gone
    assert "userdel edgesense" in result.stdout


def test_install_builds_the_checkout_when_given_no_wheel(tmp_path, wheelhouse):
    """From a copy: setuptools' build/ left in a checkout never reaches the venv."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    stale = checkout / "build/lib/app/deleted_since.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    root = tmp_path / "root"

    result = ok(install(root, "--source", checkout, "--wheelhouse", wheelhouse))

    assert f"building a wheel from {checkout}" in result.stderr
    ok(run([root / VENV / "bin/python", "-c", "import app, sensors, logging_setup"]))
    assert list(root.glob("opt/edgesense/venv/lib/*/site-packages/app/deleted_since.py")) == []
    assert sorted(p.name for p in checkout.iterdir() if p.name in ("build", "edgesense.egg-info")) == ["build"]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--bogus"], "install.sh: unknown option: --bogus (see --help)\n"),
        (["--wheel"], "install.sh: --wheel needs a value (see --help)\n"),
    ],
)
def test_bad_options_get_one_line_and_status_2(tmp_path, options, message):
    result = run(["sh", INSTALL, "--root", tmp_path, *options])
    assert (result.returncode, result.stderr, result.stdout) == (2, message, "")


@pytest.mark.parametrize(
    "option, message",
    [
        ("--wheel", "--wheel {}: no such file"),
        ("--wheelhouse", "--wheelhouse {}: no such folder"),
        ("--config", "--config {}: no such file"),
        ("--source", "no checkout at {} (no pyproject.toml): pass --wheel FILE or --source DIR"),
    ],
)
def test_a_missing_input_is_one_error_and_nothing_is_created(tmp_path, option, message):
    missing = tmp_path / "missing"

    result = install(tmp_path / "root", option, missing)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "install.sh: error: " + message.format(missing) + "\n"
    assert list((tmp_path / "root").iterdir()) == []


def test_an_image_with_another_python_version_is_refused(tmp_path, wheel, wheelhouse):
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").symlink_to("python3.99")
    ours = run([venv_python(), "-c", "import sys; print(\"python%d.%d\" % sys.version_info[:2])"]).stdout.strip()

    result = install(root, "--wheel", wheel, "--wheelhouse", wheelhouse)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"install.sh: error: the image's /usr/bin/python3 is python3.99 and {venv_python()} "
                             f"is {ours}: pass --python a python3.99\n")
    assert sorted(path.name for path in root.rglob("*")) == ["bin", "python3", "usr"]


def test_help_names_every_option():
    text = ok(run(["sh", INSTALL, "--help"])).stdout
    for option in ("--wheel", "--source", "--wheelhouse", "--config", "--python", "--operator",
                   "--root", "--uninstall", "--purge"):
        assert option in text


# --- install.sh on the host, in a private mount namespace ---------------------

# Runs as root in its own mount namespace: /etc and /usr/lib/sysusers.d are
# copies, /opt and /usr/local/bin are empty tmpfs, so install.sh does what it
# does on a Pi (systemd-sysusers and usermod for real, on the copied /etc)
# while this machine stays untouched. systemctl is a recording stand-in:
# there is no systemd to talk to here.
FAKE_SYSTEMCTL = """\
#!/bin/sh
echo "$*" >>"$SANDBOX/systemctl.log"
for unit in "$@"; do :; done
case $1 in
    is-active) [ -f "$SANDBOX/active-$unit" ] ;;
    start|restart) touch "$SANDBOX/active-$unit" ;;
    disable) rm -f "$SANDBOX/active-$unit" ;;
esac
"""

SANDBOX_SETUP = """\
set -eu
: "${SANDBOX:?}"
mount --make-rprivate /
cp -a /etc "$SANDBOX/etc"
mkdir "$SANDBOX/sysusers.d"
cp -a /usr/lib/sysusers.d/. "$SANDBOX/sysusers.d/"
mount --bind "$SANDBOX/etc" /etc
mount --bind "$SANDBOX/sysusers.d" /usr/lib/sysusers.d
mount -t tmpfs edgesense-test /opt
mount -t tmpfs edgesense-test /usr/local/bin
mkdir -p "$SANDBOX/bin"
cat >"$SANDBOX/bin/systemctl" <<'EOF'
""" + FAKE_SYSTEMCTL + """EOF
chmod 0755 "$SANDBOX/bin/systemctl"
export PATH="$SANDBOX/bin:$PATH"
"""

SANDBOX_SCRIPT = SANDBOX_SETUP + """\
useradd --no-create-home tester
export SUDO_USER=tester
for run in first second; do
    echo "--- $run" >>"$SANDBOX/systemctl.log"
    sh "$INSTALL" --python "$PYTHON" --wheel "$WHEEL" --wheelhouse "$WHEELHOUSE" >"$SANDBOX/$run.out" 2>&1
done
cp /etc/passwd /etc/group /etc/edgesense/config.toml "$SANDBOX/"
readlink /usr/local/bin/edgesense >"$SANDBOX/link"
echo "--- uninstall" >>"$SANDBOX/systemctl.log"
sh "$INSTALL" --uninstall >"$SANDBOX/uninstall.out" 2>&1
ls -A /opt /usr/local/bin /etc/edgesense >"$SANDBOX/left" 2>&1
ls -A /etc/systemd/system >"$SANDBOX/units"
"""


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs root and unshare(1) for a private mount namespace")
@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_install_on_the_host_creates_the_user_and_starts_the_service(tmp_path, wheel, wheelhouse):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    environment = dict(os.environ, SANDBOX=str(sandbox), INSTALL=str(INSTALL), PYTHON=venv_python(),
                       WHEEL=str(wheel), WHEELHOUSE=str(wheelhouse))

    result = subprocess.run(["unshare", "--mount", "sh", "-c", SANDBOX_SCRIPT], env=environment,
                            capture_output=True, text=True, timeout=60, cwd="/")

    outputs = {path.stem: path.read_text() for path in sandbox.glob("*.out")}
    assert result.returncode == 0, f"{result.stderr}\n{outputs}"
    groups = {line.split(":")[0]: line.split(":")[3].split(",")
              for line in (sandbox / "group").read_text().splitlines()}
    passwd = {line.split(":")[0]: line.split(":") for line in (sandbox / "passwd").read_text().splitlines()}
    assert passwd["edgesense"][6] in ("/usr/sbin/nologin", "/sbin/nologin")
    assert all("edgesense" in groups[group] for group in ("gpio", "spi", "i2c"))
    assert groups["edgesense"] == ["tester"]
    assert (sandbox / "link").read_text() == "/opt/edgesense/venv/bin/edgesense\n"
    assert 'dir = "/var/log/edgesense"' in (sandbox / "config.toml").read_text()
    assert (sandbox / "systemctl.log").read_text().splitlines() == [
        "--- first",
        "daemon-reload", "enable --quiet edgesense.service", "is-active --quiet edgesense.service",
        "start edgesense.service",
        "--- second",
        "daemon-reload", "enable --quiet edgesense.service", "is-active --quiet edgesense.service",
        "--- uninstall",
        "disable --now --quiet edgesense.service", "daemon-reload",
    ]
    assert "install.sh: user: added tester to group edgesense" in outputs["first"]
    assert "install.sh: unit: installing /etc/systemd/system/edgesense.service" in outputs["first"]
    assert "install.sh: service: starting" in outputs["first"]
    assert "install.sh: logs: /var/log/edgesense/edgesense.log" in outputs["first"]
    assert "added tester" not in outputs["second"]
    assert "install.sh: service: running, unchanged" in outputs["second"]
    assert (sandbox / "left").read_text().split() == ["/etc/edgesense:", "config.toml", "/opt:", "/usr/local/bin:"]
    assert "edgesense.service" not in (sandbox / "units").read_text().split()


# --- the installed service, run the way the unit runs it ------------------------

# The unit's sandbox, rebuilt with the kernel's own tools since there is no
# systemd here: a private mount namespace where every mount but /proc, /sys
# and /dev is read-only except the service's log, state and runtime folders
# (ProtectSystem=strict), a writable TMPDIR of its own (PrivateTmp=), no
# network (PrivateNetwork=), the installed program at its place on the image
# (/opt/edgesense: the venv names nothing else), user nobody with no groups, no capabilities and
# no new privileges (User=, CapabilityBoundingSet=, NoNewPrivileges=), the
# kernel's W^X lock (MemoryDenyWriteExecute=, through PR_SET_MDWE where the
# kernel has it, 6.3 and later), and the unit's system call filter, computed
# from systemd's own groups and loaded with libseccomp (SystemCallFilter=,
# SystemCallErrorNumber=EPERM). Not rebuilt: the device allow-list (no
# devices here: the sensors use gpiozero's mock pins).
SERVICE_SANDBOX = """\
set -eu
: "${BASE:?}" "${IMAGE:?}"
mount --make-rprivate /
mount -t tmpfs edgesense-test /opt
mkdir /opt/edgesense
mount --bind "$IMAGE/opt/edgesense" /opt/edgesense
for dir in log state run tmp; do mount --bind "$BASE/$dir" "$BASE/$dir"; done
awk '{ print $5 }' /proc/self/mountinfo | sort -u | while read -r target; do
    case $target in
        /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;;
        "$BASE"/log|"$BASE"/state|"$BASE"/run|"$BASE"/tmp) ;;
        *) mount -o remount,bind,ro "$target" ;;
    esac
done
cd "$BASE/run"
umask 0027
exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \\
    --inh-caps=-all --bounding-set=-all \\
    env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/ TMPDIR="$BASE/tmp" \\
    LG_WD="$BASE/run" RUNTIME_DIRECTORY="$BASE/run" \\
    NOTIFY_SOCKET="$BASE/notify/socket" WATCHDOG_USEC=2000000 \\
    "$PYTHON" -c "$LOCK_DOWN" "$ALLOWED_SYSCALLS" "$@"
"""

# Runs last, then execs the service: what systemd does between fork and exec.
LOCK_DOWN = """\
import ctypes, errno, os, sys
allowed, command = sys.argv[1].split(), sys.argv[2:]
ctypes.CDLL(None).prctl(65, 1, 0, 0, 0)  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
seccomp = ctypes.CDLL("libseccomp.so.2")
seccomp.seccomp_init.restype = ctypes.c_void_p
seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
ACT_ALLOW, ACT_ERRNO = 0x7FFF0000, 0x00050000
context = ctypes.c_void_p(seccomp.seccomp_init(ctypes.c_uint32(ACT_ERRNO | errno.EPERM)))
for name in allowed:
    number = seccomp.seccomp_syscall_resolve_name(name.encode())
    if number >= 0:
        seccomp.seccomp_rule_add(context, ctypes.c_uint32(ACT_ALLOW), ctypes.c_int(number), ctypes.c_uint(0))
if seccomp.seccomp_load(context) != 0:
    sys.exit("cannot load the system call filter")
os.execv(command[0], command)
"""


def syscall_groups():
    """systemd's system call groups (`systemd-analyze syscall-filter`)."""
    groups, current = {}, None
    for line in run(["systemd-analyze", "syscall-filter", "--no-pager"]).stdout.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and not line.strip().startswith("#") and current is not None:
            current.append(line.strip())
    return groups


def expand(name, groups):
    if not name.startswith("@"):
        return {name}
    return set().union(*(expand(member, groups) for member in groups[name]))


def unit_syscall_allow_list():
    """SystemCallFilter=@system-service, then SystemCallFilter=~@privileged @resources."""
    groups = syscall_groups()
    allowed, denied = unit_settings(UNIT)["SystemCallFilter"]
    assert not allowed.startswith("~") and denied.startswith("~")
    names = set().union(*(expand(name, groups) for name in allowed.split()))
    names -= set().union(*(expand(name, groups) for name in denied[1:].split()))
    assert {"execve", "mmap", "socket", "clone"} <= names
    assert names.isdisjoint({"setuid", "sched_setscheduler", "setrlimit", "chown", "init_module"})
    return names


SERVICE_CONFIG = """\
[logging]
dir = "{base}/log"
console = false

[supervisor]
start_method = "{start_method}"
state_file = "{base}/state/state.json"

[gpio]
pin_factory = "mock"

[[sensor]]
name = "button"
type = "button"
interval = 0.3
pin = 17

[[sensor]]
name = "motion"
type = "motion"
interval = 0.3
pin = 27

[[sensor]]
name = "load"
type = "load_average"
interval = 0.3

[[sensor]]
name = "disk"
type = "disk_usage"
interval = 0.3
filesystem = "{base}/log"
"""


class NotifySocket:
    """What systemd's notify socket receives from ``service``, one datagram at a time."""

    def __init__(self, path):
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.settimeout(0.2)
        path.chmod(0o777)
        self.service = None  # the Popen, set once started
        self.received = []

    def wait_for(self, line, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.socket.recv(4096).decode()
            except TimeoutError:
                if self.service.poll() is not None:
                    raise AssertionError(f"the service exited ({self.service.returncode}) before {line}:\n"
                                         + self.service.communicate(timeout=10)[0]) from None
                continue
            self.received.append(message)
            if line in message.splitlines():
                return
        raise AssertionError(f"no {line} within {timeout} s; received {self.received}")

    def close(self):
        self.socket.close()


def readings_by_sensor(log_dir):
    path = log_dir / "readings.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return {json.loads(line)["sensor"] for line in lines}


def wait_until(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def is_gone(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def assert_sandboxed(pid):
    """The process runs as nobody, without capabilities or a way to gain
    any, without network, on a read-only root."""
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    assert status["Uid"].split() == ["65534"] * 4
    assert status["Groups"].strip() == ""
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # a filter is loaded
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    root_mount = next(line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                      if line.split()[4] == "/")
    assert "ro" in root_mount[5].split(",")


def assert_an_operator_reads_status_and_logs(service, config):
    """A member of the service's group (nobody's, here) reads the state and the
    logs over SSH; another user gets one line, not a traceback. They run the
    installed command where the service's files are (its mount namespace)."""

    def as_user(groups, *args):
        return run(["nsenter", f"--target={service.pid}", "--mount",
                    "setpriv", "--reuid=4242", "--regid=4242", f"--groups={groups}" if groups else "--clear-groups",
                    "/" / VENV / "bin/edgesense", *args, "--config", config])

    def button_line():
        status = ok(as_user("65534", "status"))
        return [line.split()[:3] for line in status.stdout.splitlines() if line.split()[:1] == ["button"]]

    wait_until(lambda: button_line() != [["button", "button", "starting"]], timeout=5)
    assert button_line() == [["button", "button", "running"]]
    logs = ok(as_user("65534", "logs", "-n", "3"))
    assert len(logs.stdout.splitlines()) == 3
    stranger = as_user("", "logs", "-n", "3")
    assert stranger.returncode != 0
    assert len(stranger.stderr.splitlines()) == 1 and "Traceback" not in stranger.stderr


def unit_command(key, config):
    """The unit's own command line, with the test's config."""
    (line,) = unit_settings(UNIT)[key]
    return line.replace("/etc/edgesense/config.toml", str(config)).split()


@pytest.mark.skipif(not can_unshare_mounts() or not shutil.which("setpriv") or not shutil.which("nsenter"),
                    reason="needs root, unshare(1), setpriv(1) and nsenter(1) to rebuild the unit's sandbox")
@pytest.mark.skipif(ctypes.util.find_library("seccomp") is None, reason="needs libseccomp for the filter")
@needs_systemd_analyze
def test_installed_service_runs_reloads_and_stops_in_the_units_sandbox(installed, start_method):
    base = open_folder()
    try:
        for name in ("log", "state", "run", "tmp", "notify"):
            (base / name).mkdir(mode=0o750)
            os.chown(base / name, 65534, 65534)
        (base / "notify").chmod(0o755)
        config = base / "config.toml"
        config.write_text(SERVICE_CONFIG.format(base=base, start_method=start_method))
        notify = NotifySocket(base / "notify/socket")
        environment = dict(os.environ, BASE=str(base), LOCK_DOWN=LOCK_DOWN,
                           ALLOWED_SYSCALLS=" ".join(sorted(unit_syscall_allow_list())),
                           IMAGE=str(installed), PYTHON=str("/" / VENV / "bin/python"))
        service = subprocess.Popen(
            ["unshare", "--mount", "--net", "sh", "-c", SERVICE_SANDBOX, "sandbox",
             *unit_command("ExecStart", config)],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        notify.service = service
        try:
            notify.wait_for("READY=1")
            wait_until(lambda: readings_by_sensor(base / "log") == {"button", "motion", "load", "disk"})
            notify.wait_for("WATCHDOG=1", timeout=5)
            state = json.loads((base / "state/state.json").read_text())
            children = [state["listener"]["pid"]] + [sensor["pid"] for sensor in state["sensors"]]
            for pid in [service.pid, *children]:
                assert_sandboxed(pid)
            assert_an_operator_reads_status_and_logs(service, config)

            reload = [word.replace("$MAINPID", str(service.pid)) for word in unit_settings(UNIT)["ExecReload"][0].split()]
            ok(run(reload))
            notify.wait_for("RELOADING=1", timeout=10)
            notify.wait_for("READY=1", timeout=10)

            service.send_signal(signal.SIGTERM)  # KillMode=mixed: the main process alone
            notify.wait_for("STOPPING=1", timeout=10)
            output, _ = service.communicate(timeout=25)  # within TimeoutStopSec=30s
        finally:
            if service.poll() is None:
                service.kill()
                service.communicate()
            notify.close()

        assert service.returncode == 0, output
        wait_until(lambda: all(is_gone(pid) for pid in children), timeout=10)
        log = (base / "log/edgesense.log").read_text()
        assert "Traceback" not in log
        assert [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line] == []
        assert list((base / "run").iterdir()) == []
    finally:
        shutil.rmtree(base)


# --- first boot ------------------------------------------------------------------


@pytest.fixture
def boot_partition(tmp_path, wheelhouse):
    """A root file system with the boot partition as README says to fill it
    (at a path with a space, which every script must quote)."""
    root = tmp_path / "root fs"
    payload = root / "boot/firmware/edgesense"
    shutil.copytree(DEPLOY, payload, symlinks=False)
    shutil.copytree(wheelhouse, payload / "wheels")
    (payload / "config.toml").write_text(
        '[logging]\ndir = "logs"\n\n[supervisor]\nstate_file = "/srv/edgesense/state.json"\n\n'
        '[[sensor]]\nname = "load"\ntype = "load_average"\ninterval = 10.0\n'
    )
    return root


def test_firstboot_arm_enables_its_unit(boot_partition):
    payload = boot_partition / "boot/firmware/edgesense"

    ok(run(["sh", payload / "firstboot.sh", "--root", boot_partition, "--arm"]))

    unit = boot_partition / "etc/systemd/system/edgesense-firstboot.service"
    assert unit.read_bytes() == FIRSTBOOT_UNIT.read_bytes()
    assert os.readlink(boot_partition / WANTS_FIRSTBOOT) == "/etc/systemd/system/edgesense-firstboot.service"
    assert "ConditionPathExists=/boot/firmware/edgesense/firstboot.sh" in unit.read_text()


def test_firstboot_installs_from_the_boot_partition_then_disarms(boot_partition):
    payload = boot_partition / "boot/firmware/edgesense"
    ok(run(["sh", payload / "firstboot.sh", "--root", boot_partition, "--arm"]))

    result = ok(run(["sh", payload / "firstboot.sh", "--root", boot_partition]))

    assert (boot_partition / VENV / "bin/edgesense").is_file()
    assert (boot_partition / INSTALLED_UNIT).read_bytes() == UNIT.read_bytes()
    config = tomllib.loads((boot_partition / CONFIG).read_text())
    assert config["logging"]["dir"] == "/var/log/edgesense"  # was relative
    assert config["supervisor"]["state_file"] == "/srv/edgesense/state.json"  # absolute: kept
    # disarmed: the unit is no longer wanted and its condition no longer holds
    assert not (boot_partition / WANTS_FIRSTBOOT).is_symlink()
    assert not (payload / "firstboot.sh").exists()
    assert (payload / "firstboot.sh.done").is_file()
    assert "install.sh: unit: installing" in (payload / "firstboot.log").read_text()
    assert "disarmed" in result.stdout
    # the wheels came from the image's own boot partition: still nothing names the root
    assert [name for name in names_of(boot_partition) if not name.startswith("boot/")] == []


FIRSTBOOT_SCRIPT = SANDBOX_SETUP + """\
: "${PAYLOAD:?}"
mount -t tmpfs edgesense-test /boot
mkdir /boot/firmware
cp -a "$PAYLOAD" /boot/firmware/edgesense
echo "--- arm" >>"$SANDBOX/systemctl.log"
sh /boot/firmware/edgesense/firstboot.sh --arm --now >"$SANDBOX/arm.out" 2>&1
ls -A /etc/systemd/system/multi-user.target.wants >"$SANDBOX/wants-armed"
echo "--- boot" >>"$SANDBOX/systemctl.log"
/bin/sh /boot/firmware/edgesense/firstboot.sh >"$SANDBOX/boot.out" 2>&1
ls -A /etc/systemd/system/multi-user.target.wants >"$SANDBOX/wants-after"
ls -A /boot/firmware/edgesense >"$SANDBOX/payload-after"
cp /etc/group /etc/passwd "$SANDBOX/"
"""


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs root and unshare(1) for a private mount namespace")
@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
@pytest.mark.skipif(venv_python() != "/usr/bin/python3", reason="firstboot.sh uses /usr/bin/python3, which cannot make a venv here")
def test_firstboot_on_the_host_arms_installs_for_the_first_user_and_disarms(boot_partition, tmp_path):
    """The cloud-init way (--arm --now), then what the unit runs, on a host
    sandboxed as in the install test above."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    environment = dict(os.environ, SANDBOX=str(sandbox),
                       PAYLOAD=str(boot_partition / "boot/firmware/edgesense"))

    result = subprocess.run(["unshare", "--mount", "sh", "-c", FIRSTBOOT_SCRIPT], env=environment,
                            capture_output=True, text=True, timeout=60, cwd="/")

    outputs = {path.stem: path.read_text() for path in sandbox.glob("*.out")}
    assert result.returncode == 0, f"{result.stderr}\n{outputs}"
    assert "edgesense-firstboot.service" in (sandbox / "wants-armed").read_text().split()
    assert "edgesense-firstboot.service" not in (sandbox / "wants-after").read_text().split()
    assert "firstboot.sh.done" in (sandbox / "payload-after").read_text().split()
    assert "firstboot.sh" not in (sandbox / "payload-after").read_text().split()
    first_user = next(line.split(":")[0] for line in (sandbox / "passwd").read_text().splitlines()
                      if line.split(":")[2] == "1000")
    groups = {line.split(":")[0]: line.split(":")[3].split(",") for line in (sandbox / "group").read_text().splitlines()}
    assert groups["edgesense"] == [first_user]
    assert (sandbox / "systemctl.log").read_text().splitlines() == [
        "--- arm",
        "daemon-reload", "start --no-block edgesense-firstboot.service",
        "--- boot",
        "daemon-reload", "enable --quiet edgesense.service", "is-active --quiet edgesense.service",
        "start edgesense.service",
    ]
    assert "install.sh: service: starting" in outputs["boot"]
    assert "firstboot.sh: disarmed" in outputs["boot"]


FIRSTBOOT_RETRY_SCRIPT = SANDBOX_SETUP + """\
: "${PAYLOAD:?}"
mount -t tmpfs edgesense-test /boot
mkdir /boot/firmware
cp -a "$PAYLOAD" /boot/firmware/edgesense
sh /boot/firmware/edgesense/firstboot.sh --arm
/bin/sh /boot/firmware/edgesense/firstboot.sh >"$SANDBOX/first.out" 2>&1 || echo $? >"$SANDBOX/first.status"
cp /boot/firmware/edgesense/firstboot.log "$SANDBOX/first.log"
[ ! -e /etc/edgesense/config.toml ] || echo "installed" >"$SANDBOX/config-after-first"
ls -A /etc/systemd/system/multi-user.target.wants >"$SANDBOX/wants-after-first"
printf '%s\\n' '[[sensor]]' 'name = "load"' 'type = "load_average"' 'interval = 10.0' \\
    >>/boot/firmware/edgesense/config.toml
/bin/sh /boot/firmware/edgesense/firstboot.sh >"$SANDBOX/second.out" 2>&1
ls -A /etc/systemd/system/multi-user.target.wants >"$SANDBOX/wants-after-second"
cp /etc/edgesense/config.toml "$SANDBOX/installed.toml"
"""


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs root and unshare(1) for a private mount namespace")
@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
@pytest.mark.skipif(venv_python() != "/usr/bin/python3", reason="firstboot.sh uses /usr/bin/python3, which cannot make a venv here")
def test_a_config_error_at_first_boot_is_fixed_on_the_boot_partition(boot_partition, tmp_path):
    """The keyboard-less loop: the error is in firstboot.log, the person fixes
    config.toml on the boot partition, the next boot installs the fixed one."""
    payload = boot_partition / "boot/firmware/edgesense"
    (payload / "config.toml").write_text('[logging]\ndir = "logs"\n\n')
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    environment = dict(os.environ, SANDBOX=str(sandbox), PAYLOAD=str(payload))

    result = subprocess.run(["unshare", "--mount", "sh", "-c", FIRSTBOOT_RETRY_SCRIPT], env=environment,
                            capture_output=True, text=True, timeout=60, cwd="/")

    outputs = {path.stem: path.read_text() for path in sandbox.glob("*.out")}
    assert result.returncode == 0, f"{result.stderr}\n{outputs}"
    assert (sandbox / "first.status").read_text() == "1\n"
    # the error names the file to fix; the config was not installed
    assert "/boot/firmware/edgesense/config.toml: sensor: no [[sensor]] section" in (sandbox / "first.log").read_text()
    assert not (sandbox / "config-after-first").exists()
    assert "edgesense-firstboot.service" in (sandbox / "wants-after-first").read_text().split()
    assert "install.sh: config: writing /etc/edgesense/config.toml" in outputs["second"]
    assert "firstboot.sh: disarmed" in outputs["second"]
    assert "edgesense-firstboot.service" not in (sandbox / "wants-after-second").read_text().split()
    installed = tomllib.loads((sandbox / "installed.toml").read_text())
    assert (installed["logging"]["dir"], installed["sensor"][0]["name"]) == ("/var/log/edgesense", "load")


def test_firstboot_failure_stays_armed(boot_partition):
    payload = boot_partition / "boot/firmware/edgesense"
    shutil.rmtree(payload / "wheels")
    ok(run(["sh", payload / "firstboot.sh", "--root", boot_partition, "--arm"]))

    result = run(["sh", payload / "firstboot.sh", "--root", boot_partition])

    assert result.returncode == 1
    assert "holds neither wheels/edgesense-*.whl nor src/pyproject.toml" in result.stderr
    assert "holds neither" in (payload / "firstboot.log").read_text()
    assert (payload / "firstboot.sh").is_file()
    assert (boot_partition / WANTS_FIRSTBOOT).is_symlink()


# --- the network for [mqtt] --------------------------------------------------------

NETWORK_DROP_IN = DEPLOY / "edgesense.service.d" / "network.conf"
INSTALLED_NETWORK_DROP_IN = Path("etc/systemd/system/edgesense.service.d/network.conf")
MQTT_CONFIG = '[mqtt]\nhost = "hub.local"\n\n' + SENSOR


def paho_in(root):
    """The version of paho-mqtt the venv installed under ``root`` imports, or None."""
    found = run([root / VENV / "bin/python", "-c",
                 "import paho.mqtt.client, importlib.metadata as m; print(m.version('paho-mqtt'))"])
    return found.stdout.strip() if found.returncode == 0 else None


def check_in(root, config):
    """`edgesense check` of ``config`` by the venv installed under ``root``."""
    return run([root / VENV / "bin/python", "-m", "app", "check", "--config", config])


def verify_unit_at(root):
    """`systemd-analyze verify --root` of the unit installed under ``root``
    with its drop-ins (the root gets this machine's targets and kill(1))."""
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for target in Path("/usr/lib/systemd/system").glob("*.target"):
        shutil.copy(target, units)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(shutil.which("kill"), root / "usr/bin/kill")
    if not (root / "bin").exists():
        (root / "bin").symlink_to("usr/bin")
    return run(["systemd-analyze", "verify", f"--root={root}", "edgesense.service"])


@needs_systemd_analyze
def test_a_config_with_mqtt_gets_the_network_drop_in_and_one_without_loses_it(fresh_install, wheel,
                                                                              wheelhouse, tmp_path):
    assert not (fresh_install / INSTALLED_NETWORK_DROP_IN).exists()
    with_mqtt, without = tmp_path / "with-mqtt.toml", tmp_path / "without.toml"
    with_mqtt.write_text(MQTT_CONFIG)
    without.write_text(SENSOR)
    options = ["--wheel", wheel, "--wheelhouse", wheelhouse, "--replace-config", "--config"]

    opened = ok(install(fresh_install, *options, with_mqtt))

    assert (f"install.sh: package: adding paho-mqtt to {wheel.name} in {fresh_install / VENV} ([mqtt] in the config)"
            in opened.stdout.splitlines())
    assert paho_in(fresh_install).startswith("2.")
    assert (fresh_install / INSTALLED_NETWORK_DROP_IN).read_bytes() == NETWORK_DROP_IN.read_bytes()
    assert (f"install.sh: network ([mqtt] in the config): installing {fresh_install / INSTALLED_NETWORK_DROP_IN}"
            in opened.stdout.splitlines())
    assert "warning" not in opened.stdout + opened.stderr
    assert names_of(fresh_install) == []
    verified = verify_unit_at(fresh_install)
    assert (verified.returncode, verified.stderr, verified.stdout) == (0, "", "")
    again = ok(install(fresh_install, *options, with_mqtt))
    assert (f"install.sh: network ([mqtt] in the config): kept {fresh_install / INSTALLED_NETWORK_DROP_IN}"
            in again.stdout.splitlines())

    closed = ok(install(fresh_install, *options, without))

    assert not (fresh_install / INSTALLED_NETWORK_DROP_IN).parent.exists()
    assert closed.stdout.splitlines()[-3:-1] == [
        f"install.sh: removed {fresh_install / INSTALLED_NETWORK_DROP_IN}",
        "install.sh: network: none for the service (no [mqtt] in the config)",
    ]


def test_the_network_drop_in_stays_beside_a_drop_in_of_the_operators_and_goes_at_uninstall(
        fresh_install, wheel, wheelhouse, tmp_path):
    with_mqtt = tmp_path / "with-mqtt.toml"
    with_mqtt.write_text(MQTT_CONFIG)
    ok(install(fresh_install, "--wheel", wheel, "--wheelhouse", wheelhouse, "--config", with_mqtt,
               "--replace-config"))
    drop_ins = fresh_install / INSTALLED_NETWORK_DROP_IN.parent
    (drop_ins / "override.conf").write_text("[Service]\nEnvironment=PYTHONPATH=/opt/edgesense-local\n")

    ok(run(["sh", INSTALL, "--root", fresh_install, "--uninstall"]))

    assert sorted(path.name for path in drop_ins.iterdir()) == ["override.conf"]


def test_an_install_without_mqtt_has_no_paho_and_its_check_warns_of_an_mqtt_table(installed, tmp_path):
    python = installed / VENV / "bin/python"
    with_mqtt = tmp_path / "with-mqtt.toml"
    with_mqtt.write_text(MQTT_CONFIG)

    result = ok(check_in(installed, with_mqtt))

    assert paho_in(installed) is None
    assert result.stderr == (
        f"edgesense: warning: [mqtt] is set, but paho-mqtt is not installed for {python}, so the publisher "
        f"cannot send anything; install it with: {python} -m pip install 'paho-mqtt>=2.0,<3'\n")


def test_an_upgrade_with_mqtt_is_checked_with_paho_and_keeps_it_once_the_table_is_gone(fresh_install, wheel,
                                                                                      wheelhouse, tmp_path):
    with_mqtt, without = tmp_path / "with-mqtt.toml", tmp_path / "without.toml"
    with_mqtt.write_text(MQTT_CONFIG)
    without.write_text(SENSOR)
    options = ["--wheel", another_wheel(wheel, tmp_path / "upgrade"), "--wheelhouse", wheelhouse,
               "--replace-config", "--config"]

    gained = ok(install(fresh_install, *options, with_mqtt))

    assert "warning" not in gained.stdout + gained.stderr  # the check imported paho from the staging folder
    assert (f"install.sh: package: installing {wheel.name} into {fresh_install / VENV} with paho-mqtt "
            "([mqtt] in the config)" in gained.stdout.splitlines())
    assert paho_in(fresh_install).startswith("2.")
    assert ok(check_in(fresh_install, with_mqtt)).stderr == ""
    assert names_of(fresh_install) == []

    lost = ok(install(fresh_install, *options, without))

    assert (f"install.sh: package: kept {wheel.name} (already installed; its paho-mqtt stays, unused without "
            "[mqtt])" in lost.stdout.splitlines())
    assert paho_in(fresh_install).startswith("2.")


def test_a_wheelhouse_without_paho_for_a_config_with_mqtt_is_one_error_and_replaces_nothing(
        fresh_install, wheel, wheelhouse, tmp_path):
    without_paho = tmp_path / "wheels"
    without_paho.mkdir()
    for found in wheelhouse.glob("*.whl"):
        if not found.name.startswith("paho_mqtt-"):
            shutil.copy(found, without_paho)
    with_mqtt = tmp_path / "with-mqtt.toml"
    with_mqtt.write_text(MQTT_CONFIG)
    before = tree(fresh_install)

    result = install(fresh_install, "--wheel", wheel, "--wheelhouse", without_paho, "--config", with_mqtt,
                     "--replace-config")

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"install.sh: error: pip could not install {wheel.name} with paho-mqtt ([mqtt] in the config): "
        f"{without_paho} needs paho-mqtt's wheel too (pip wheel -w DIR '.[mqtt]')")
    assert tree(fresh_install) == before


def security_failures(root):
    """The settings `systemd-analyze security` holds against the unit
    installed under ``root`` with its drop-ins, and its exposure line."""
    result = ok(run(["systemd-analyze", "security", "--offline=true", "--no-pager", f"--root={root}",
                     "edgesense.service"]))
    lines = result.stdout.splitlines()
    return {line.split()[1] for line in lines if line.startswith("✗")}, lines[-1]


@needs_systemd_analyze
def test_the_network_drop_in_opens_what_the_unit_closes_and_nothing_else(tmp_path):
    """Under the drop-in the unit's exposure rises by the network alone: the
    other settings stay as the unit has them."""
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units)
    closed, closed_exposure = security_failures(tmp_path)
    (units / "edgesense.service.d").mkdir()
    shutil.copy(NETWORK_DROP_IN, units / "edgesense.service.d")

    opened, opened_exposure = security_failures(tmp_path)

    assert sorted(opened - closed) == ["IPAddressDeny=", "PrivateNetwork=",
                                       "RestrictAddressFamilies=~AF_(INET|INET6)"]
    assert closed - opened == set()
    assert float(closed_exposure.split()[-3]) < float(opened_exposure.split()[-3]) <= 1.5


# The operator's routine on a card installed with [mqtt]: check says nothing of
# the network while the drop-in is there, and warns once it is gone.
NETWORK_CHECKS = """\
edgesense check >/dev/null 2>"/tmp/open.err"; cat /tmp/open.err; echo "open: exit $?"
rm /etc/systemd/system/edgesense.service.d/network.conf
edgesense check >/dev/null 2>&1 && echo "closed: exit 0"
edgesense check 2>&1 >/dev/null
"""


@pytest.mark.skipif(not can_overlay(), reason="needs root, unshare(1) and overlayfs to put the image at /")
def test_check_on_the_card_warns_of_a_closed_network_for_mqtt_only(fresh_install, wheel, wheelhouse, tmp_path):
    with_mqtt = tmp_path / "with-mqtt.toml"
    with_mqtt.write_text(MQTT_CONFIG)
    ok(install(fresh_install, "--wheel", wheel, "--wheelhouse", wheelhouse, "--config", with_mqtt,
               "--replace-config"))

    result = in_image(fresh_install, NETWORK_CHECKS, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["open: exit 0", "closed: exit 0", lines[2]]
    assert len(lines) == 3
    assert lines[2].startswith("edgesense: warning: [mqtt] is set, but the service has no network to reach "
                               "hub.local:1883 (PrivateNetwork=yes, ")
    assert "/etc/systemd/system/edgesense.service.d/network.conf" in lines[2]
    assert lines[2].endswith("then sudo systemctl restart edgesense; a reload does not change the sandbox")


def test_firstboot_with_mqtt_on_the_boot_partition_installs_the_network_drop_in(boot_partition):
    payload = boot_partition / "boot/firmware/edgesense"
    config = payload / "config.toml"
    config.write_text(config.read_text() + '\n[mqtt]\nhost = "hub.local"\n')

    ok(run(["sh", payload / "firstboot.sh", "--root", boot_partition]))

    assert (boot_partition / INSTALLED_NETWORK_DROP_IN).read_bytes() == NETWORK_DROP_IN.read_bytes()


# The operator's routine on the host: [mqtt] added by hand to an installed
# config; check says the network is closed; install.sh opens it (and restarts:
# a reload cannot), then takes it away once the table is gone.
NETWORK_ROUTINE = SANDBOX_SETUP + """\
install() { sh "$INSTALL" --python "$PYTHON" --wheel "$WHEEL" --wheelhouse "$WHEELHOUSE" "$@"; }
install --config "$SANDBOX/plain.toml" >"$SANDBOX/plain.out" 2>&1
printf '\\n[mqtt]\\nhost = "hub.local"\\n' >>/etc/edgesense/config.toml
edgesense check >/dev/null 2>"$SANDBOX/closed.err"
echo "--- open" >>"$SANDBOX/systemctl.log"
install >"$SANDBOX/open.out" 2>&1
edgesense check >/dev/null 2>"$SANDBOX/opened.err"
ls -A /etc/systemd/system/edgesense.service.d >"$SANDBOX/drop-ins"
sed -i '/^\\[mqtt\\]$/,$d' /etc/edgesense/config.toml
echo "--- close" >>"$SANDBOX/systemctl.log"
install >"$SANDBOX/close.out" 2>&1
[ ! -e /etc/systemd/system/edgesense.service.d ] || echo "left" >"$SANDBOX/drop-ins-left"
/opt/edgesense/venv/bin/python -c 'import paho.mqtt.client' && echo "kept" >"$SANDBOX/paho"
"""


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs root and unshare(1) for a private mount namespace")
@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_mqtt_added_to_an_installed_config_is_warned_of_then_opened_by_install(tmp_path, wheel, wheelhouse):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "plain.toml").write_text(SENSOR)
    environment = dict(os.environ, SANDBOX=str(sandbox), INSTALL=str(INSTALL), PYTHON=venv_python(),
                       WHEEL=str(wheel), WHEELHOUSE=str(wheelhouse))

    result = subprocess.run(["unshare", "--mount", "sh", "-c", NETWORK_ROUTINE], env=environment,
                            capture_output=True, text=True, timeout=90, cwd="/")

    outputs = {path.stem: path.read_text() for path in sandbox.glob("*.out")}
    assert result.returncode == 0, f"{result.stderr}\n{outputs}"
    warning, client_warning = (sandbox / "closed.err").read_text().splitlines()
    assert client_warning == (
        "edgesense: warning: [mqtt] is set, but paho-mqtt is not installed for /opt/edgesense/venv/bin/python, "
        "so the publisher cannot send anything; re-run install.sh, which installs it for a config with [mqtt] "
        "(or: sudo /opt/edgesense/venv/bin/python -m pip install 'paho-mqtt>=2.0,<3')")
    assert warning.startswith("edgesense: warning: [mqtt] is set, but the service has no network to reach "
                              "hub.local:1883 (PrivateNetwork=yes, RestrictAddressFamilies= without AF_INET and "
                              "AF_INET6, IPAddressDeny=any in /etc/systemd/system/edgesense.service and its "
                              "drop-ins): re-run install.sh, which adds the drop-in "
                              "/etc/systemd/system/edgesense.service.d/network.conf")
    assert "warning" not in outputs["open"]
    assert (f"install.sh: package: adding paho-mqtt to {wheel.name} in /opt/edgesense/venv ([mqtt] in the config)"
            in outputs["open"].splitlines())
    assert (sandbox / "paho").read_text() == "kept\n"
    assert ("install.sh: network ([mqtt] in the config): installing "
            "/etc/systemd/system/edgesense.service.d/network.conf") in outputs["open"].splitlines()
    assert (sandbox / "opened.err").read_text() == ""
    assert (sandbox / "drop-ins").read_text() == "network.conf\n"
    assert "install.sh: network: none for the service (no [mqtt] in the config)" in outputs["close"].splitlines()
    assert not (sandbox / "drop-ins-left").exists()
    log = (sandbox / "systemctl.log").read_text().splitlines()
    assert log[log.index("--- open"):] == [
        "--- open",
        "daemon-reload", "enable --quiet edgesense.service", "is-active --quiet edgesense.service",
        "restart edgesense.service",
        "--- close",
        "daemon-reload", "enable --quiet edgesense.service", "is-active --quiet edgesense.service",
        "restart edgesense.service",
    ]

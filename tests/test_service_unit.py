"""app/service_unit.py: the installed unit's user and folders, read from the
deploy/ unit and drop-ins laid out under a temporary root."""

import shutil
from pathlib import Path

from app.service_unit import find_unit, unit_for_config

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "edgesense.service"
SERVICE_DIRS = (Path("/var/log/edgesense"), Path("/var/lib/edgesense"), Path("/run/edgesense"))


def installed_root(tmp_path):
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / "edgesense.service")
    (tmp_path / "etc/edgesense").mkdir()
    (tmp_path / "etc/edgesense/config.toml").write_text("")
    return tmp_path


def test_the_deploy_unit_runs_as_edgesense_and_may_write_its_own_folders_only(tmp_path):
    unit = find_unit(installed_root(tmp_path))

    assert unit.user == "edgesense"
    assert unit.groups == ("edgesense", "gpio", "spi", "i2c")
    assert unit.config == Path("/etc/edgesense/config.toml")
    assert unit.own_dirs == SERVICE_DIRS
    assert unit.writable == SERVICE_DIRS


def test_drop_ins_change_the_user_and_add_writable_paths_in_name_order(tmp_path):
    root = installed_root(tmp_path)
    drop_ins = root / "etc/systemd/system/edgesense.service.d"
    drop_ins.mkdir()
    (drop_ins / "20-usb.conf").write_text("[Service]\nReadWritePaths=-/mnt/usb/edgesense\nUser=sensors\n")
    (drop_ins / "10-first.conf").write_text("[Service]\nUser=ignored\nSupplementaryGroups=\n")

    unit = find_unit(root)

    assert unit.user == "sensors"
    assert unit.groups == ("edgesense",)
    assert unit.writable == SERVICE_DIRS + (Path("/mnt/usb/edgesense"),)


def test_only_the_config_the_unit_runs_is_judged_for_its_user(tmp_path):
    root = installed_root(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text("")

    assert unit_for_config(root / "etc/edgesense/config.toml", root=root).user == "edgesense"
    assert unit_for_config(other, root=root) is None
    assert unit_for_config(other, root=tmp_path / "nothing-installed") is None

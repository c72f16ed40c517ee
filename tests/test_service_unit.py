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


NETWORK_DROP_IN = ROOT / "deploy" / "edgesense.service.d" / "network.conf"


def test_the_deploy_unit_keeps_the_network_closed_and_its_network_drop_in_opens_it(tmp_path):
    root = installed_root(tmp_path)
    assert find_unit(root).network_closed_by == (
        "PrivateNetwork=yes", "RestrictAddressFamilies= without AF_INET and AF_INET6", "IPAddressDeny=any")

    drop_ins = root / "etc/systemd/system/edgesense.service.d"
    drop_ins.mkdir()
    shutil.copy(NETWORK_DROP_IN, drop_ins / "network.conf")

    assert find_unit(root).network_closed_by == ()


def test_address_families_merge_the_way_systemd_merges_them(tmp_path):
    root = installed_root(tmp_path)
    drop_ins = root / "etc/systemd/system/edgesense.service.d"
    drop_ins.mkdir()
    drop_in = drop_ins / "50-mine.conf"
    closed = ("RestrictAddressFamilies= without AF_INET and AF_INET6",)
    for lines, closed_by in [
        ("PrivateNetwork=no\nIPAddressAllow=localhost\n", closed),        # AF_UNIX only, from the unit
        ("PrivateNetwork=false\nIPAddressAllow=any\nRestrictAddressFamilies=AF_INET6\n", ()),  # added
        ("PrivateNetwork=no\nIPAddressDeny=\nRestrictAddressFamilies=\n", ()),  # reset: every family
        ("PrivateNetwork=no\nIPAddressDeny=\nRestrictAddressFamilies=\nRestrictAddressFamilies=~AF_INET AF_INET6\n",
         closed),                                                            # a deny list of both
        ("PrivateNetwork=no\nIPAddressDeny=\nRestrictAddressFamilies=\nRestrictAddressFamilies=~AF_INET\n", ()),
        ("PrivateNetwork=no\nIPAddressDeny=\nRestrictAddressFamilies=AF_INET\nRestrictAddressFamilies=~AF_INET\n",
         closed),                                                            # added, then taken away
    ]:
        drop_in.write_text("[Service]\n" + lines)
        assert find_unit(root).network_closed_by == closed_by, lines

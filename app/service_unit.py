"""What the installed systemd unit says about the service's user and files.

``edgesense check`` on the config the unit runs judges the log folder and the
state file for the unit's ``User=`` (an operator who may only read the logs
is not the one who writes them), knowing which folders systemd makes for the
service (``LogsDirectory=``, ``StateDirectory=``, ...) and which ones its
``ProtectSystem=strict`` leaves writable. Only the unit and drop-in files are
read; systemd is not asked (it may not run, or not yet know a new drop-in).
It also tells whether the sandbox lets the service reach the network at all
(the MQTT publisher needs it).
"""

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

UNIT = "edgesense.service"
# Where systemd looks for units, the first folder winning for a name.
UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system",
             "usr/lib/systemd/system")
DROP_IN_DIRS = ("service.d", UNIT + ".d")
# systemd's own folders for a service: (setting, base folder).
SERVICE_DIRECTORIES = (("LogsDirectory", "/var/log"), ("StateDirectory", "/var/lib"),
                       ("RuntimeDirectory", "/run"), ("CacheDirectory", "/var/cache"))
LIST_SETTINGS = ({"SupplementaryGroups", "ReadWritePaths", "IPAddressDeny", "IPAddressAllow"}
                 | {name for name, _ in SERVICE_DIRECTORIES})
# Kept as the assignments they are: a leading ~ turns a whole one into a deny list.
ASSIGNMENT_LISTS = {"RestrictAddressFamilies"}
IP_FAMILIES = ("AF_INET", "AF_INET6")
YES = ("1", "yes", "true", "on")


@dataclass(frozen=True)
class ServiceUnit:
    """The settings of the unit that decide where its service may write."""

    path: Path
    user: str
    groups: tuple[str, ...]          # Group= and SupplementaryGroups=
    config: Path | None              # --config of ExecStart=
    own_dirs: tuple[Path, ...]       # made by systemd for the service, owned by its user
    writable: tuple[Path, ...] | None  # ProtectSystem=strict: all the service may write; else None
    network_closed_by: tuple[str, ...] = ()  # the settings that keep it from any IP address


def find_unit(root="/"):
    """The installed edgesense unit with its drop-ins, or None."""
    base = Path(root)
    unit = next((base / folder / UNIT for folder in UNIT_DIRS if (base / folder / UNIT).is_file()), None)
    if unit is None:
        return None
    settings = {}
    for path in [unit, *_drop_ins(base)]:
        _read_service_section(path, settings)
    return _unit_from_settings(unit, settings)


def unit_for_config(config_path, root="/"):
    """The installed unit when it runs ``config_path``, else None."""
    unit = find_unit(root)
    if unit is None or unit.config is None:
        return None
    try:
        return unit if os.path.samefile(Path(root) / unit.config.relative_to("/"), config_path) else None
    except OSError:
        return None


def _drop_ins(base):
    found = {}
    for folder in UNIT_DIRS:
        for drop_in_dir in DROP_IN_DIRS:
            for path in sorted((base / folder / drop_in_dir).glob("*.conf")):
                found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


def _read_service_section(path, settings):
    """Adds the [Service] settings of one file: a list setting appends (an
    empty one resets it), any other replaces."""
    section = None
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, separator, value = line.partition("=")
        if section != "Service" or not separator or line.startswith(("#", ";")):
            continue
        key, value = key.strip(), value.strip()
        if key in LIST_SETTINGS:
            settings[key] = settings.get(key, []) + value.split() if value else []
        elif key in ASSIGNMENT_LISTS:
            settings[key] = settings.get(key, []) + [value] if value else []
        else:
            settings[key] = value


def _unit_from_settings(path, settings):
    own_dirs = tuple(Path(base) / name for key, base in SERVICE_DIRECTORIES
                     for name in settings.get(key, []))
    writable = None
    if settings.get("ProtectSystem") == "strict":
        writable = own_dirs + tuple(Path(entry.lstrip("-+")) for entry in settings.get("ReadWritePaths", []))
    groups = tuple(filter(None, [settings.get("Group")] + settings.get("SupplementaryGroups", [])))
    return ServiceUnit(path=path, user=settings.get("User") or "root", groups=groups,
                       config=_config_option(settings.get("ExecStart", "")),
                       own_dirs=own_dirs, writable=writable,
                       network_closed_by=_network_closed_by(settings))


def _network_closed_by(settings):
    """The settings that leave the service no IPv4 and no IPv6 at all. Any
    ``IPAddressAllow=`` beside ``IPAddressDeny=any`` counts as open: its
    writer chose what the service may reach."""
    closed = []
    if settings.get("PrivateNetwork", "").lower() in YES:
        closed.append("PrivateNetwork=yes")
    allowed = _allowed_families(settings.get("RestrictAddressFamilies", []))
    if not any(family in allowed for family in IP_FAMILIES):
        closed.append("RestrictAddressFamilies= without AF_INET and AF_INET6")
    if "any" in settings.get("IPAddressDeny", []) and not settings.get("IPAddressAllow"):
        closed.append("IPAddressDeny=any")
    return tuple(closed)


def _allowed_families(assignments):
    """The IP families ``RestrictAddressFamilies=`` lets through: the first
    assignment makes an allow list (or, with ~, a deny list) that later ones
    add to or take from, as systemd merges them."""
    allowed = set(IP_FAMILIES)
    for index, assignment in enumerate(assignments):
        denies = assignment.startswith("~")
        families = set(assignment.lstrip("~").split())
        if index == 0 and not denies:
            allowed = families & set(IP_FAMILIES) if "none" not in families else set()
        elif denies:
            allowed -= families
        else:
            allowed |= families & set(IP_FAMILIES)
    return allowed


def _config_option(command_line):
    try:
        words = shlex.split(command_line.lstrip("-@:+!"))
    except ValueError:
        return None
    for index, word in enumerate(words):
        if word in ("--config", "-c") and index + 1 < len(words):
            return Path(words[index + 1])
        if word.startswith("--config="):
            return Path(word.partition("=")[2])
    return None

"""Whether the service can write where the config says.

For this process the answer is tried for real where that writes nothing the
service will not write anyway (permission bits do not bind root, and neither
they nor ``access()`` know that ``/proc`` takes no new folders): a missing
folder's nearest existing ancestor gets a probe folder, made and removed at
once; an existing folder is judged by ``access()``, its mount's read-only flag
and whether it lies on a kernel file system (``/proc``, ``/sys``, ...), so a
check beside a running service changes nothing in its folder. For another
user (the ``User=`` of the unit that runs the config, or the owner of the
log folder) the answer is judged from the file modes, and where it cannot be
judged (no such user here, a folder this process cannot see into, an ACL)
nothing is called wrong: ``judgement_notes`` says so instead.

Each check adds ``(key path, message)`` problems to the collector that
config validation passes in.
"""

import errno
import grp
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sensors.problems import render

ACL_ATTRIBUTE = "system.posix_acl_access"


@dataclass(frozen=True)
class ServiceUser:
    """The user the service runs as, when that is not this process's user
    (or when systemd's unit restricts where it may write)."""

    name: str
    why: str                                  # how it was found, for messages
    groups: tuple[str, ...] = ()              # besides the user's own
    own_dirs: tuple[Path, ...] = ()           # folders systemd makes for it
    writable: tuple[Path, ...] | None = None  # ProtectSystem=strict: all it may write

    @classmethod
    def from_unit(cls, unit):
        return cls(unit.user, f"User= of {unit.path}", unit.groups, unit.own_dirs, unit.writable)

    @classmethod
    def owner_of(cls, directory):
        uid = directory.stat().st_uid
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, f"the owner of {directory}")

    def ids(self):
        """(uid, group ids), or None when there is no such user here."""
        try:
            entry = pwd.getpwnam(self.name) if not self.name.isdigit() else pwd.getpwuid(int(self.name))
        except KeyError:
            return None
        gids = {entry.pw_gid} | {group.gr_gid for group in grp.getgrall() if entry.pw_name in group.gr_mem}
        for name in self.groups:
            try:
                gids.add(grp.getgrnam(name).gr_gid)
            except KeyError:
                pass
        return entry.pw_uid, frozenset(gids)


def check_writable(directory, key_path, problems, user=None):
    """The folder exists and is writable, or could be created."""
    reason = _unwritable_reason(directory, user)
    if reason:
        problems.add(key_path, f"{render(str(directory))} {reason}")


def check_state_file(state_file, problems, user=None):
    if os.path.isdir(state_file):
        problems.add("supervisor.state_file", f"{render(str(state_file))} is a folder; "
                                              "expected a file path")
        return
    reason = _unwritable_reason(state_file.parent, user)
    if reason:
        problems.add("supervisor.state_file", f"{render(str(state_file))} cannot be written: "
                                              f"its folder {reason}")


def judgement_notes(directories, user):
    """One line per folder whose writability for ``user`` could not be
    judged (and so was not called wrong)."""
    notes = []
    for directory in directories:
        reason = _cannot_judge(directory, user) if user else None
        if reason:
            notes.append(f"cannot judge whether user {user.name} ({user.why}) may write {directory}: {reason}")
    return notes


def _nearest_existing(path):
    """``path`` or its nearest ancestor that exists; OSError for a path no
    file system takes (a name too long, a loop of links)."""
    probe = path
    while True:
        try:
            os.stat(probe)
            return probe
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                return probe
        probe = probe.parent


def _unwritable_reason(directory, user):
    """Why files cannot be written in ``directory`` (without creating it),
    or None."""
    if user is not None:
        if any(_within(directory, folder) for folder in user.own_dirs):
            return None
        if user.writable is not None and not any(_within(directory, folder) for folder in user.writable):
            return (f"is read-only for the service (ProtectSystem=strict in its unit): add "
                    f"ReadWritePaths={directory} in a drop-in (systemctl edit edgesense)")
    try:
        existing = _nearest_existing(directory)
    except PermissionError as error:
        return None if user is not None else f"cannot be used: {error.strerror}"  # a note for the user
    except OSError as error:
        return f"cannot be used: {error.strerror}"
    creating = "" if existing == directory else "cannot be created: "
    subject = "" if existing == directory else f"{existing} "
    if not existing.is_dir():
        return "exists and is not a folder" if existing == directory else f"{creating}{existing} is not a folder"
    if _read_only(existing):
        return f"{creating}{subject}is on a read-only file system"
    ids = user.ids() if user is not None else None
    if user is not None and (ids is None or ids[0] != os.geteuid()):
        if ids is None or _cannot_judge(directory, user) or _may_write(existing, *ids):
            return None  # judgement_notes says when it could not judge
        return f"{creating}{subject}is not writable for user {user.name} ({user.why})"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{creating}{subject}is not writable"
    pseudo = _pseudo_file_system(existing)
    if pseudo:
        return f"{creating}{subject}is on a {pseudo} file system, which takes no log files"
    return _probe(existing, creating + subject) if creating else None


def _within(path, folder):
    return path == folder or folder in path.parents


def _read_only(folder):
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


# Kernel file systems that show a folder tree but take no files of ours.
PSEUDO_FILE_SYSTEMS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "rpc_pipefs",
    "securityfs", "selinuxfs", "sysfs", "tracefs",
})


def _pseudo_file_system(folder):
    """The type of the kernel file system ``folder`` is on, or None."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        real = os.path.realpath(folder)
    except OSError:
        return None
    best, kind = "", None
    for line in mounts:
        fields, _, rest = line.partition(" - ")
        point = fields.split()[4].replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, rest.split()[0]
    return kind if kind in PSEUDO_FILE_SYSTEMS else None


def _probe(folder, subject):
    """Make and remove a folder in ``folder``, the nearest existing ancestor
    of a log folder: what the listener will do there."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".edgesense-check-", dir=folder))
    except OSError as error:
        if error.errno == errno.EROFS:
            return f"{subject}is on a read-only file system"
        if error.errno in (errno.EACCES, errno.EPERM):
            return f"{subject}is not writable"
        return f"{subject}takes no new folders ({error.strerror})"
    return None


def _may_write(folder, uid, gids):
    """``uid`` with ``gids`` may search every folder down to ``folder`` and
    write in it, by the mode bits."""
    for ancestor in [folder, *folder.parents]:
        needed = stat.S_IWOTH | stat.S_IXOTH if ancestor == folder else stat.S_IXOTH
        if not _allows(ancestor.stat(), uid, gids, needed):
            return False
    return True


def _allows(status, uid, gids, other_bits):
    if uid == 0:
        return True
    if status.st_uid == uid:
        return status.st_mode & (other_bits << 6) == other_bits << 6
    if status.st_gid in gids:
        return status.st_mode & (other_bits << 3) == other_bits << 3
    return status.st_mode & other_bits == other_bits


def _cannot_judge(directory, user):
    """Why the modes cannot tell whether ``user`` may write ``directory``, or None."""
    if user.ids() is None:
        return f"there is no user {user.name} here"
    try:
        existing = _nearest_existing(directory)
    except OSError as error:
        return error.strerror
    for ancestor in [existing, *existing.parents]:
        try:
            ancestor.stat()
            has_acl = ACL_ATTRIBUTE in os.listxattr(ancestor)
        except PermissionError:
            return f"this user cannot look into {ancestor.parent}"
        except OSError:
            has_acl = False
        if has_acl:
            return f"{ancestor} has an access control list"
    return None

"""The log folder as hostile ground (DESIGN.md L10, L11).

The service often runs as root beside a folder others can write. So every
file of the folder is opened, linked, renamed and deleted relative to one
descriptor of the folder held from the start, never through a symbolic link
(``O_NOFOLLOW``) and never blocking on a FIFO (``O_NONBLOCK``); temporary
names are created with ``O_EXCL``; and only files edgesense made are touched:
regular files owned by this process's user with a single link. Anything else
under one of edgesense's names is foreign.
"""

import errno
import os
import secrets
import stat

FILE_MODE = 0o640
"""Every file edgesense creates in the folder, whatever the umask: the
service's user writes, its group reads."""

FOLDER_MODE = 0o750
"""The folder, when edgesense creates it, whatever the umask."""

TEMP_SUFFIXES = (".new", ".tmp")
"""What the names of temporary files end with: a fresh live file (``.new``),
an archive being written (``.gz.tmp``)."""

_OPEN = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TEMP_ATTEMPTS = 16
_NOT_A_REGULAR_FILE = (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK)


class ForeignEntry(Exception):
    """A name edgesense uses holds something edgesense did not make."""


def is_own(info, links=1):
    """Whether ``info`` (an lstat result) is a file edgesense made: regular,
    this user's, and linked ``links`` times (a hard link to someone else's
    file has more)."""
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_nlink == links


def describe(info):
    """What a foreign entry is, in a few words."""
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(info.st_mode):
        return "a folder"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid != os.geteuid():
        return f"a file of user {info.st_uid}"
    return f"a file with {info.st_nlink} links"


class Folder:
    """One log folder, held open by a descriptor. When the folder is deleted
    while open, ``reopen_if_gone`` creates it again."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.fd = None
        self._open()

    def _open(self):
        created = _make_folder(self.path)
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if created:
            os.fchmod(fd, FOLDER_MODE)
        if self.fd is not None:
            os.close(self.fd)
        self.fd = fd

    def is_gone(self):
        """Whether the folder held open was removed (a removed folder has no links)."""
        return os.fstat(self.fd).st_nlink == 0

    def reopen_if_gone(self):
        """Create the folder again if it was removed. True when it was."""
        if not self.is_gone():
            return False
        self._open()
        return True

    def lstat(self, name):
        """The entry ``name`` as it is (links not followed), or None."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def names(self):
        """The names in the folder."""
        with os.scandir(self.fd) as entries:
            return [entry.name for entry in entries]

    def open_own(self, name, flags=os.O_RDONLY):
        """A descriptor of the file ``name`` that edgesense made; raises
        ForeignEntry for anything else, FileNotFoundError when missing."""
        try:
            fd = os.open(name, flags | _OPEN, dir_fd=self.fd)
        except OSError as error:
            info = self.lstat(name) if error.errno in _NOT_A_REGULAR_FILE else None
            if info is None:
                raise
            raise ForeignEntry(f"{os.path.join(self.path, name)} is {describe(info)}") from None
        try:
            info = os.fstat(fd)
            if not is_own(info):
                raise ForeignEntry(f"{os.path.join(self.path, name)} is {describe(info)}")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def create(self, name, flags=os.O_WRONLY | os.O_APPEND):
        """A new file ``name`` with FILE_MODE; FileExistsError when taken."""
        fd = os.open(name, flags | os.O_CREAT | os.O_EXCL | _OPEN, FILE_MODE, dir_fd=self.fd)
        os.fchmod(fd, FILE_MODE)
        os.set_blocking(fd, True)
        return fd

    def create_temp(self, base, suffix, flags=os.O_WRONLY | os.O_APPEND):
        """``(name, fd)`` of a new file named ``<base>.<random><suffix>``."""
        for _ in range(_TEMP_ATTEMPTS):
            name = f"{base}.{secrets.token_hex(4)}{suffix}"
            try:
                return name, self.create(name, flags)
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free temporary name", os.path.join(self.path, base))

    def link(self, source, target):
        """A second name for ``source``; FileExistsError when ``target`` is taken."""
        os.link(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)

    def rename(self, source, target):
        os.rename(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def move_new(self, source, target):
        """Rename ``source`` to ``target``, never over an entry already
        there: a link then an unlink, or on a file system without hard links
        (vfat) a rename after a check. FileExistsError when ``target`` is taken."""
        try:
            self.link(source, target)
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP) or self.lstat(target) is not None:
                raise
            self.rename(source, target)
            return
        self.unlink(source)

    def unlink(self, name):
        os.unlink(name, dir_fd=self.fd)

    def unlink_if(self, name, inode):
        """Delete ``name`` if it is still the file ``inode``. True when deleted."""
        info = self.lstat(name)
        if info is None or info.st_ino != inode or not stat.S_ISREG(info.st_mode):
            return False
        self.unlink(name)
        return True

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _make_folder(path):
    """Create ``path`` (and its parents) if missing. True when this call made it."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:
        return False
    return True

"""Opening files of a folder others may write, for the readers (``logs``,
``status``): never through a symbolic link, never a FIFO or a device (which
would block or never end), so a planted entry cannot hang or crash them."""

import errno
import os
import stat

_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotRegularFile(OSError):
    """The path is a link, a folder, a FIFO or a device: not read."""


def open_regular(path):
    """``path`` opened for binary reading if it is a regular file. Raises
    NotRegularFile for anything else, FileNotFoundError when missing."""
    try:
        fd = os.open(path, _OPEN)
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise
        raise NotRegularFile(error.errno, f"not a regular file ({kind_of(path)})", str(path)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, f"not a regular file ({kind_of(path)})", str(path))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def kind_of(path):
    """What is at ``path``, in a word or two."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "gone"
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a file")):
        if test(mode):
            return name
    return "a device"

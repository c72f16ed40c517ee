"""systemd's notify protocol: one datagram of ``KEY=value`` lines to the
socket named by NOTIFY_SOCKET (sd_notify(3)). Every call is a no-op when
edgesense does not run under systemd.

Written here rather than taken from a library: the protocol is a single
sendto() on an AF_UNIX datagram socket, smaller than a dependency.
"""

import logging
import os
import socket
import time

logger = logging.getLogger(__name__)


class Notifier:
    """Talks to systemd on behalf of the supervisor (the service's main process)."""

    def __init__(self, environ=os.environ):
        self._address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(environ)
        self._last_status = None
        self._socket = None
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self):
        return self._socket is not None

    def ready(self):
        self._send("READY=1")

    def status(self, text):
        """Send STATUS= only when it changed."""
        if text != self._last_status:
            self._last_status = text
            self._send(f"STATUS={text}")

    def watchdog(self):
        self._send("WATCHDOG=1")

    def stopping(self):
        self._send("STOPPING=1")

    def reloading(self):
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")

    def close(self):
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, message):
        if self._socket is None:
            return
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError as error:
            logger.warning("cannot notify systemd (%s): %s", message.split("=")[0], error)


def _socket_address(value):
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _watchdog_interval(environ):
    """Half of WATCHDOG_USEC in seconds, or None when the watchdog is off or
    meant for another process (WATCHDOG_PID)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1e6 / 2

"""systemd's notify protocol against a datagram socket the test binds."""

import os
import socket

import pytest

from app.notify import Notifier


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_no_notify_socket_makes_every_call_a_no_op():
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.ready()
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    assert notifier.watchdog_interval is None


def test_messages_arrive_as_single_datagrams(notify_socket):
    path, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready()
    notifier.status("2/2 sensors running")
    notifier.status("2/2 sensors running")
    notifier.status("1/2 sensors running")
    notifier.watchdog()
    notifier.stopping()
    received = [sock.recv(100).decode() for _ in range(5)]
    assert received == ["READY=1", "STATUS=2/2 sensors running", "STATUS=1/2 sensors running",
                        "WATCHDOG=1", "STOPPING=1"]
    notifier.close()


def test_abstract_socket_address():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"edgesense-test-{os.getpid()}"
    sock.bind("\0" + name)
    sock.settimeout(2)
    Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
    assert sock.recv(100) == b"READY=1"
    sock.close()


def test_reloading_carries_the_monotonic_time(notify_socket):
    path, sock = notify_socket
    Notifier({"NOTIFY_SOCKET": path}).reloading()
    first, second = sock.recv(100).decode().split("\n")
    assert first == "RELOADING=1"
    assert second.startswith("MONOTONIC_USEC=") and int(second.split("=")[1]) > 0


@pytest.mark.parametrize("environ, interval", [
    ({"WATCHDOG_USEC": "4000000"}, 2.0),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}, 2.0),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "junk"}, None),
])
def test_watchdog_interval_is_half_of_watchdog_usec(environ, interval):
    assert Notifier(environ).watchdog_interval == interval

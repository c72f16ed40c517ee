"""A private Mosquitto for a test, and a client that collects what it says.

Every broker listens on 127.0.0.1 at a free port, keeps its persistence in
the test's temporary folder, and is started and stopped by the test with
bounded waits. ``BrokerFiles`` variants add a password file or TLS with a CA
the test makes with ``openssl``.
"""

import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_SECONDS = 10.0
STOP_SECONDS = 5.0


def required_tool(name, why):
    """The path of ``name``; missing, the test fails under CI (which installs
    it) and is skipped elsewhere, saying so either way."""
    path = shutil.which(name) or next(
        (candidate for candidate in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}")
         if os.access(candidate, os.X_OK)), None)
    if path is None:
        message = f"{name} is not installed ({why}; apt-get install mosquitto mosquitto-clients)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_paho():
    """paho-mqtt (the ``mqtt`` extra), failing under CI when missing."""
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        message = "paho-mqtt is not installed (pip install '.[test,mqtt]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def free_port():
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class BrokerFiles:
    """What a broker needs on disk: its folder, and for the variants the
    password file or the CA, server certificate and key."""

    folder: Path
    users: dict = field(default_factory=dict)
    tls: bool = False

    @property
    def ca_file(self):
        return self.folder / "ca.crt"

    def prepare(self):
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        if self.users:
            self._write_password_file()
        if self.tls:
            make_certificates(self.folder)

    def _write_password_file(self):
        tool = required_tool("mosquitto_passwd", "the password variant needs it")
        path = self.folder / "passwords"
        path.write_text("")
        for user, password in self.users.items():
            subprocess.run([tool, "-b", str(path), user, password], check=True, timeout=10,
                           capture_output=True)

    def config_text(self, port):
        lines = [
            f"listener {port} {HOST}",
            f"allow_anonymous {'false' if self.users else 'true'}",
            "persistence true",
            f"persistence_location {self.folder / 'data'}/",
            f"log_dest file {self.folder / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # A test's subscriber may lag a fast publisher: the broker keeps
            # every message for it (its default drops past 1000 queued).
            "max_queued_messages 0",
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
        ]
        if self.users:
            lines.append(f"password_file {self.folder / 'passwords'}")
        if self.tls:
            lines += [f"cafile {self.ca_file}", f"certfile {self.folder / 'server.crt'}",
                      f"keyfile {self.folder / 'server.key'}"]
        return "\n".join(lines) + "\n"


def make_certificates(folder):
    """A CA and a server certificate for 127.0.0.1 and localhost, signed by it."""
    folder = Path(folder)

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, timeout=30, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edgesense test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")


class Broker:
    """One Mosquitto process. ``start()`` returns once it accepts connections;
    ``stop()`` ends it (SIGTERM, then SIGKILL); ``start()`` again brings it
    back on the same port with the same persistence (an outage)."""

    def __init__(self, files):
        self.files = files
        self.binary = required_tool("mosquitto", "the MQTT tests need a real broker")
        self.port = free_port()
        self.process = None
        files.prepare()
        self.config_path = files.folder / "mosquitto.conf"
        self.config_path.write_text(files.config_text(self.port))

    def start(self):
        self.process = subprocess.Popen([self.binary, "-c", str(self.config_path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.process.returncode}: "
                                     f"{self.process.stderr.read().decode(errors='replace')}{self.log_text()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"mosquitto did not listen on {HOST}:{self.port} within {START_SECONDS} s")

    def stop(self):
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_SECONDS)
        process.stderr.close()

    def log_text(self):
        path = self.files.folder / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Collector:
    """A paho client subscribed to ``topics`` that keeps every message:
    ``(topic, payload bytes, retain)`` in arrival order. With a ``session``
    name the broker keeps its subscription and queues what it misses while
    it is away (a persistent session), across a broker restart too."""

    def __init__(self, broker, topics=("#",), username=None, password=None, tls_ca=None, session=None):
        require_paho()
        import paho.mqtt.client as mqtt

        self.messages = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=session or f"collector-{os.getpid()}-{id(self)}",
                                  clean_session=session is None)
        if username:
            self.client.username_pw_set(username, password)
        if tls_ca:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.refused = None
        self.client.on_connect = lambda client, userdata, flags, reason, properties: (
            self._refuse(reason) if reason.is_failure else client.subscribe([(topic, 1) for topic in topics]))
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._keep
        self.client.connect(HOST, broker.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(START_SECONDS) or self.refused:
            self.close()
            raise AssertionError(f"the collector could not subscribe: {self.refused or 'timed out'}")

    def _refuse(self, reason):
        self.refused = str(reason)
        self._subscribed.set()

    def _keep(self, client, userdata, message):
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic):
        """Payloads received on ``topic``, in order."""
        with self._lock:
            return [payload for name, payload, _retain in self.messages if name == topic]

    def json_on(self, topic):
        return [json.loads(payload) for payload in self.on(topic)]

    def wait(self, predicate, timeout=20.0, what="messages"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                             f"{len(self.messages)} messages so far")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker, topic_filter, settle=1.0, **options):
    """The retained messages under ``topic_filter`` as a fresh subscriber
    sees them: ``{topic: payload}``."""
    collector = Collector(broker, (topic_filter,), **options)
    time.sleep(settle)
    collector.close()
    return {topic: payload for topic, payload, retain in collector.messages if retain}


@pytest.fixture
def broker(tmp_path):
    """A running anonymous broker."""
    running = Broker(BrokerFiles(tmp_path / "broker")).start()
    yield running
    running.stop()


@pytest.fixture
def password_broker(tmp_path):
    """A running broker that takes only the user ``board`` with password ``s3cret``."""
    running = Broker(BrokerFiles(tmp_path / "broker", users={"board": "s3cret"})).start()
    yield running
    running.stop()


@pytest.fixture
def tls_broker(tmp_path):
    """A running broker that speaks TLS only, with a certificate from a CA
    the test made (``broker.files.ca_file``)."""
    running = Broker(BrokerFiles(tmp_path / "broker", tls=True)).start()
    yield running
    running.stop()


class StallingProxy:
    """A TCP relay to a broker on 127.0.0.1 whose open connections can be
    made to go silent (``stall()``): nothing more passes either way and
    nothing is closed, as when a network drops. Connections made after a
    stall are relayed again."""

    def __init__(self, broker):
        self.broker = broker
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.generation = 0
        self._sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.broker.port))
            self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(source, target, self.generation), daemon=True).start()

    def _relay(self, source, target, generation):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                break
            if generation != self.generation:
                continue  # stalled: swallowed, like packets into a dead link
            try:
                target.sendall(data)
            except OSError:
                return
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stall(self):
        self.generation += 1

    def close(self):
        self.listener.close()
        for sock in self._sockets:
            sock.close()

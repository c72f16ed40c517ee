"""The publisher: every reading of ``readings.jsonl`` to an MQTT broker, at
least once, oldest first.

The backlog is the readings file itself (``app.backlog``); the only queue
in memory is the window of readings published and not yet acknowledged,
which a new session sends again from the cursor. Each session is a new
paho client with a clean session, so nothing paho kept in memory is ever
relied on. paho is imported here only, when a config has ``[mqtt]``.

The loop is one thread: ``client.loop()`` waits on the socket for at most
``POLL_SECONDS`` (a reading is sent within about that long of reaching the
file), a refused or lost connection is one line in the log and a retry
after a bounded backoff, and the readings keep waiting on disk meanwhile.
paho-mqtt missing is one such line too (not a traceback per restart): the
sensors go on, and the publisher starts sending once it can import paho.
"""

import json
import logging
import os
import ssl
import time
from collections import deque
from dataclasses import dataclass

from app.backlog import Backlog, Position
from app.mqtt_settings import missing_client_library
from app.mqtt_wire import (OFFLINE, ONLINE, Topics, cleared_discovery, discovery_messages,
                           reading_id, reading_payload)

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
WINDOW = 100
"""Readings published and not yet acknowledged, at most."""
CURSOR_SAVE_SECONDS = 5.0
"""The cursor is saved (fsynced) at most this often while readings flow, and
at every stop: a crash redelivers at most this much, with the same ids."""
STATUS_SECONDS = 5.0
RECONNECT_INITIAL = 0.5
RECONNECT_MAX = 5.0
CONNACK_SECONDS = 10.0
STOP_SECONDS = 3.0
"""A clean stop waits this long for the last acknowledgements and ``offline``."""


@dataclass
class InFlight:
    """A line sent and not yet acknowledged (``mid`` None: a line that is not
    a reading, passed over in order)."""

    mid: int | None
    after: Position
    sensor: str | None
    id: str | None
    ts: str | None


class Session:
    """One connection to the broker: one paho client, thrown away when the
    connection ends."""

    def __init__(self, settings, topics, password):
        import paho.mqtt.client as mqtt

        self.mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgesense-{settings.node}",
                                  clean_session=True, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(2 * WINDOW + 16)
        if settings.username:
            self.client.username_pw_set(settings.username, password)
        if settings.tls:
            self.client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None)
        self.client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = lambda client, userdata, mid, reason, properties: self.acked.add(mid)
        self.client.on_message = self._on_message
        self.acked = set()
        self.connected = False
        self.ended = None
        self.home_assistant_online = False
        self.started = time.monotonic()

    def open(self, settings):
        self.client.connect(settings.host, settings.port, keepalive=settings.keepalive)

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self.ended = f"the broker refused the connection: {reason}"
        else:
            self.connected = True

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        said = "" if str(reason) in ("Unspecified error", "Success") else f" ({reason})"
        self.ended = self.ended or f"the broker or the network closed it{said}"
        self.connected = False

    def _on_message(self, client, userdata, message):
        if bytes(message.payload) == ONLINE:
            self.home_assistant_online = True

    def pump(self, timeout):
        """Network I/O for up to ``timeout`` seconds; False once the session is over."""
        if self.ended is None:
            result = self.client.loop(timeout)
            if result != self.mqtt.MQTT_ERR_SUCCESS and self.ended is None:
                self.ended = f"the broker or the network closed it ({self.mqtt.error_string(result)})"
        if self.ended is None and not self.connected and time.monotonic() - self.started > CONNACK_SECONDS:
            self.ended = f"the broker did not answer within {CONNACK_SECONDS:g} s"
        return self.ended is None

    def publish(self, topic, payload, retain=False):
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != self.mqtt.MQTT_ERR_SUCCESS and self.ended is None:
            self.ended = f"publishing failed ({self.mqtt.error_string(info.rc)})"
        return info.mid

    def close(self):
        """Disconnect if still connected, and release the socket whatever
        state the connection is in."""
        try:
            self.client.disconnect()
            self.client.loop(0.1)
        except Exception:  # the connection is broken already: nothing to say goodbye on
            pass
        sock = self.client.socket()
        if sock is not None:
            sock.close()


def read_password(path):
    """The password in ``path`` (its first line), or raise OSError."""
    with open(path, encoding="utf-8") as file:
        return file.readline().rstrip("\r\n")


def describe_connect_error(error):
    """One line for why a connection could not be opened."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the broker's TLS certificate was not accepted: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


class Publisher:
    """Sends the backlog of ``log_dir`` to the broker of ``settings``, with
    Home Assistant discovery for ``sensors`` (``SensorConfig``s)."""

    def __init__(self, settings, sensors, log_dir, version="0", now=time.monotonic):
        self.settings = settings
        self.sensors = tuple(sensors)
        self.topics = Topics(settings.topic_prefix, settings.node)
        self.version = version
        self.now = now
        self.backlog = Backlog(log_dir)
        self.session = None
        self.announced_session = False
        self.in_flight = deque()
        self.retry_at = now()
        self.delay = RECONNECT_INITIAL
        self.problem = None
        self.failed_attempts = 0
        self.last_acked = (self.backlog.state.status or {}).get("last_acked")
        self.more_waiting = True
        self.saved_at = self.reported_at = -CURSOR_SAVE_SECONDS
        self.status_changed = True

    # --- the loop ---

    def run(self, stop):
        """Publish until ``stop`` (a ``threading.Event``-like object) is set."""
        log.info("publishing readings to mqtt%s://%s as node %s", "s" if self.settings.tls else "",
                 self.settings.broker, self.settings.node)
        try:
            while not stop.is_set():
                self.step(stop)
        finally:
            self._finish()

    def step(self, stop):
        """One turn: connect when due, move bytes, send what is new, save."""
        if self.session is None:
            waited = max(0.0, min(self.retry_at - self.now(), POLL_SECONDS))
            if waited and stop.wait(waited):
                return
            # Offline, the files are still watched: what the budget deletes
            # meanwhile is counted, not merely missed.
            self.backlog.refresh()
            if self.now() >= self.retry_at:
                self._connect()
        elif self.session.pump(0 if self._can_send() else POLL_SECONDS):
            self._serve()
        else:
            self._session_ended()
        self._save_when_due()

    def _can_send(self):
        """Whether more is waiting to be sent now (then the loop does not wait)."""
        return self.session.connected and self.more_waiting and len(self.in_flight) < WINDOW

    # --- sessions ---

    def _connect(self):
        missing = missing_client_library()
        if missing:  # one line, then a quiet look every few seconds: pip may install it meanwhile
            self._failed(missing)
            return
        try:
            password = read_password(self.settings.password_file) if self.settings.password_file else None
        except (OSError, UnicodeDecodeError) as error:
            self._failed(f"cannot read the MQTT password file {self.settings.password_file}: "
                         f"{getattr(error, 'strerror', None) or error}")
            return
        session = Session(self.settings, self.topics, password)
        try:
            session.open(self.settings)
        except Exception as error:
            session.close()
            self._failed(f"cannot connect to the MQTT broker {self.settings.broker}: "
                         f"{describe_connect_error(error)}")
            return
        self.session = session
        self.announced_session = False

    def _serve(self):
        session = self.session
        if not session.connected:
            return
        if not self.announced_session:
            self._start_session()
        if session.home_assistant_online:
            session.home_assistant_online = False
            self._announce()
        self._take_acknowledgements()
        self._send()

    def _start_session(self):
        self.announced_session = True
        self.delay = RECONNECT_INITIAL
        log.info("connected to the MQTT broker %s%s", self.settings.broker,
                 f" after {self.failed_attempts} failed attempts" if self.failed_attempts else "")
        self.problem, self.failed_attempts = None, 0
        self.session.publish(self.topics.availability, ONLINE, retain=True)
        if self.settings.discovery:
            self.session.client.subscribe(f"{self.settings.discovery_prefix}/status", qos=1)
        self._announce()
        self.status_changed = True

    def _announce(self):
        """Discovery configs (retained), and empty ones for sensors no longer configured."""
        messages = {}
        if self.settings.discovery:
            messages = discovery_messages(self.sensors, self.topics, self.settings.discovery_prefix,
                                          self.version)
        for topic in cleared_discovery(self.backlog.state.announced, messages):
            self.session.publish(topic, b"", retain=True)
        for topic, payload in messages.items():
            self.session.publish(topic, payload, retain=True)
        self.backlog.announce(messages)

    def _session_ended(self):
        reason, was_connected = self.session.ended, self.session.connected or self.announced_session
        self.session.close()
        self.session = None
        self.in_flight.clear()
        self.backlog.rewind()
        if was_connected:
            self._failed(f"lost the connection to the MQTT broker {self.settings.broker}: {reason}")
        else:
            self._failed(f"cannot connect to the MQTT broker {self.settings.broker}: {reason}")

    def _failed(self, problem):
        """One line per new problem; then retry after a bounded backoff."""
        self.failed_attempts += 1
        if problem != self.problem:
            log.warning("%s; retrying every %g s at most, readings wait on disk", problem, RECONNECT_MAX)
        self.problem = problem
        self.retry_at = self.now() + self.delay
        self.delay = min(self.delay * 2, RECONNECT_MAX)
        self.status_changed = True

    # --- readings ---

    def _send(self):
        room = WINDOW - len(self.in_flight)
        if room <= 0:
            return
        self.backlog.refresh()
        latest = {}
        lines = self.backlog.lines(room)
        self.more_waiting = len(lines) == room
        for line in lines:
            reading = _reading(line.text)
            if reading is None:
                log.warning("skipped a line of readings.jsonl that is not a reading: %.80r", line.text)
                self.in_flight.append(InFlight(None, line.after, None, None, None))
                continue
            sensor = str(reading.get("sensor"))
            identity = reading_id(line.key, line.number)
            payload = reading_payload(reading, self.settings.node, identity)
            mid = self.session.publish(self.topics.reading(sensor), payload)
            self.in_flight.append(InFlight(mid, line.after, sensor, identity, reading.get("ts")))
            latest[sensor] = payload
        for sensor, payload in latest.items():
            self.session.publish(self.topics.state(sensor), payload, retain=True)

    def _take_acknowledgements(self):
        acked = self.session.acked
        while self.in_flight and (self.in_flight[0].mid is None or self.in_flight[0].mid in acked):
            done = self.in_flight.popleft()
            acked.discard(done.mid)
            self.backlog.acknowledge(done.after)
            if done.mid is not None:
                self.last_acked = {"sensor": done.sensor, "id": done.id, "ts": done.ts}

    # --- saving and status ---

    def _save_when_due(self, force=False):
        now = self.now()
        if force or self.status_changed or now - self.saved_at >= CURSOR_SAVE_SECONDS:
            self.backlog.report(self.status())
            self.backlog.save()
            self.saved_at, self.status_changed = now, False

    def status(self):
        """What ``edgesense status`` shows: see README (Sending readings to MQTT)."""
        oldest = self.backlog.oldest_pending()
        connected = self.session is not None and self.session.connected
        return {
            "pid": os.getpid(),
            "state": "connected" if connected else ("connecting" if self.session else "disconnected"),
            "connected": connected,
            "broker": self.settings.broker,
            "problem": self.problem,
            "backlog": self.backlog.pending(),
            "oldest_pending_ts": oldest.get("ts") if oldest else None,
            "last_acked": self.last_acked,
            "updated": time.time(),
        }

    # --- stopping ---

    def _finish(self):
        """Say ``offline``, wait a little for the last acknowledgements, save."""
        if self.session is not None and self.session.connected:
            mid = self.session.publish(self.topics.availability, OFFLINE, retain=True)
            deadline = self.now() + STOP_SECONDS
            while self.now() < deadline and self.session.pump(0.05):
                self._take_acknowledgements()
                if mid in self.session.acked and not self.in_flight:
                    break
            self._take_acknowledgements()
        if self.session is not None:
            self.session.close()
            self.session = None
        self._save_when_due(force=True)
        final = self.backlog.state.status or {}
        self.backlog.report(dict(final, state="stopped", connected=False, pid=None))
        self.backlog.save()
        self.backlog.close()


def _reading(text):
    try:
        reading = json.loads(text)
    except ValueError:
        return None
    return reading if isinstance(reading, dict) and "sensor" in reading else None


class PipeStop:
    """The stop request of a supervised publisher: a message on the read end
    of a pipe from the supervisor, or the supervisor's death (the publisher
    ignores the tree's signals, like every child)."""

    def __init__(self, receiver):
        import multiprocessing

        parent = multiprocessing.parent_process()
        self.handles = [receiver] + ([parent.sentinel] if parent is not None else [])

    def is_set(self):
        return self.wait(0)

    def wait(self, timeout):
        from multiprocessing import connection

        return bool(connection.wait(self.handles, timeout))


def run_publisher(settings, sensors, log_dir, *, sender, stop, log_level="INFO"):
    """Process target for ``publisher``: publish until the supervisor asks
    it to stop (``stop``, the read end of a ``ctx.Pipe(duplex=False)``) or
    is gone. ``sender`` is the LogSender."""
    import multiprocessing

    from logging_setup import configure_process
    from logging_setup.signals import ignore_tree_signals

    ignore_tree_signals()
    configure_process(sender, log_level)
    multiprocessing.current_process().name = "publisher"
    status = 0
    try:
        Publisher(settings, sensors, log_dir, publisher_version()).run(PipeStop(stop))
    except Exception:
        log.exception("the publisher failed; the supervisor starts it again, from its cursor")
        status = 1
    # multiprocessing children skip logging's exit hook.
    logging.shutdown()
    raise SystemExit(status)


def publisher_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgesense")
    except PackageNotFoundError:
        return "0"


def main(argv=None):
    """``python -m app.publisher --config PATH``: the publisher on its own,
    in the foreground, against the config's log folder (SIGTERM or Ctrl-C
    stops it cleanly). Exit status 2 when the config is bad or has no
    ``[mqtt]`` table."""
    import argparse
    import signal
    import sys
    import threading

    from app.config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="python -m app.publisher")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if config.mqtt is None:
        print(f"{args.config}: mqtt: missing; the publisher needs an [mqtt] table", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s publisher %(name)s %(levelname)-8s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    Publisher(config.mqtt, config.sensors, config.logging.dir, publisher_version()).run(stop)
    return 0


if __name__ == "__main__":
    from app.publisher import main as main_of_the_module  # its loggers named app.publisher, not __main__

    raise SystemExit(main_of_the_module())

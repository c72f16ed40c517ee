"""The publisher against a real Mosquitto: every reading of readings.jsonl
arrives, once per id unless redelivered, in order per sensor, through
outages, kills, a wrong password and TLS; discovery and availability."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logging_setup.directory import LogDirectory
from mqtt_broker import Collector, broker, password_broker, retained, tls_broker  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
NODE = "testnode"


def write_config(folder, broker, sensors=("load", "disk"), **mqtt):
    table = {"host": "127.0.0.1", "port": broker.port, "node": NODE, **mqtt}
    lines = ["[logging]", f'dir = "{folder / "logs"}"', "", "[mqtt]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    for name in sensors:
        kind = "disk_usage" if name.startswith("disk") else "load_average"
        lines += ["", "[[sensor]]", f'name = "{name}"', f'type = "{kind}"', "interval = 1.0"]
    path = folder / "edgesense.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Readings:
    """Writes numbered readings into a log folder the way the listener does."""

    def __init__(self, folder, max_file_bytes=4096, max_total_bytes=1 << 20, compress=True):
        directory = LogDirectory(folder, max_file_bytes, max_total_bytes, compress=compress, report=lambda m: None)
        self.live = directory.open_live("readings.jsonl")
        self.next = {}

    def write(self, count, sensors=("load", "disk")):
        for _ in range(count):
            for sensor in sensors:
                n = self.next.get(sensor, 0)
                self.next[sensor] = n + 1
                line = {"ts": "2026-03-14T09:26:53.589+00:00", "sensor": sensor, "type": "load_average",
                        "value": n, "unit": "load"}
                assert self.live.append((json.dumps(line, separators=(",", ":")) + "\n").encode())
            self.live.flush()


class PublisherProcess:
    """``python -m app.publisher``, or with ``before``: that code, then the
    publisher's main, in one ``python -c``."""

    def __init__(self, config, before=None):
        self.config = config
        self.before = before
        self.process = None

    def start(self):
        program = (["-m", "app.publisher"] if self.before is None
                   else ["-c", self.before + "from app.publisher import main\nraise SystemExit(main())\n"])
        self.process = subprocess.Popen([sys.executable, *program, "--config", str(self.config)],
                                        cwd=ROOT, stderr=subprocess.PIPE, text=True)
        return self

    def stop(self, signum=signal.SIGTERM, timeout=15):
        self.process.send_signal(signum)
        self.process.wait(timeout)
        return self.process.stderr.read()

    def close(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def publisher():
    started = []

    def start(config, before=None):
        started.append(PublisherProcess(config, before).start())
        return started[-1]

    yield start
    for process in started:
        process.close()


def topic(sensor, kind):
    return f"edgesense/{NODE}/{sensor}/{kind}"


def numbers(collector, sensor):
    return [message["value"] for message in collector.json_on(topic(sensor, "reading"))]


def distinct_numbers(collector, sensor):
    """The numbers received, once each (a redelivery has the same id)."""
    seen, kept = set(), []
    for message in collector.json_on(topic(sensor, "reading")):
        if message["id"] not in seen:
            seen.add(message["id"])
            kept.append(message["value"])
    return kept


def wait_all(collector, count, sensors=("load", "disk"), timeout=30):
    collector.wait(lambda c: all(len(distinct_numbers(c, s)) >= count for s in sensors), timeout,
                   what=f"{count} readings of each sensor")


def assert_each_once_in_order(collector, count, sensors=("load", "disk")):
    for sensor in sensors:
        assert distinct_numbers(collector, sensor) == list(range(count))
        by_id = {}
        for message in collector.json_on(topic(sensor, "reading")):
            assert by_id.setdefault(message["id"], message) == message  # a duplicate is a redelivery


def test_every_reading_arrives_once_in_order_with_node_and_id(broker, tmp_path, publisher):
    readings = Readings(tmp_path / "logs")
    readings.write(300)
    collector = Collector(broker, ("edgesense/#",))
    running = publisher(write_config(tmp_path, broker))
    wait_all(collector, 300)
    readings.write(20)
    wait_all(collector, 320)
    running.stop()
    assert numbers(collector, "load") == list(range(320))
    first = collector.json_on(topic("load", "reading"))[0]
    assert list(first) == ["ts", "sensor", "type", "value", "unit", "node", "id"]
    assert first["node"] == NODE
    ids = [m["id"] for s in ("load", "disk") for m in collector.json_on(topic(s, "reading"))]
    assert len(set(ids)) == 640


def test_state_is_the_latest_reading_retained_and_availability_follows_a_clean_stop(broker, tmp_path, publisher):
    readings = Readings(tmp_path / "logs")
    readings.write(10)
    collector = Collector(broker, ("edgesense/#",))
    running = publisher(write_config(tmp_path, broker))
    wait_all(collector, 10)
    collector.wait(lambda c: c.on(f"edgesense/{NODE}/availability") == [b"online"], what="online")
    kept = retained(broker, "edgesense/#")
    assert json.loads(kept[topic("load", "state")])["value"] == 9
    assert kept[f"edgesense/{NODE}/availability"] == b"online"
    running.stop()
    assert retained(broker, f"edgesense/{NODE}/availability") == {f"edgesense/{NODE}/availability": b"offline"}


def test_the_last_will_says_offline_when_the_publisher_is_killed(broker, tmp_path, publisher):
    Readings(tmp_path / "logs").write(1)
    collector = Collector(broker, (f"edgesense/{NODE}/availability",))
    running = publisher(write_config(tmp_path, broker))
    collector.wait(lambda c: c.on(f"edgesense/{NODE}/availability") == [b"online"], what="online")
    running.stop(signal.SIGKILL)
    collector.wait(lambda c: c.on(f"edgesense/{NODE}/availability") == [b"online", b"offline"], what="the will")


def test_an_outage_of_the_broker_loses_nothing(broker, tmp_path, publisher):
    readings = Readings(tmp_path / "logs")
    readings.write(50)
    collector = Collector(broker, ("edgesense/+/+/reading",))
    running = publisher(write_config(tmp_path, broker))
    wait_all(collector, 50)
    collector.close()
    broker.stop()
    readings.write(400)  # across several rotations while the broker is down
    time.sleep(1.5)
    broker.start()
    collector = Collector(broker, ("edgesense/+/+/reading",))
    wait_all(collector, 400, timeout=40)
    readings.write(50)
    collector.wait(lambda c: all(distinct_numbers(c, s)[-1:] == [499] for s in ("load", "disk")),
                   what="the readings after the outage")
    for sensor in ("load", "disk"):
        assert distinct_numbers(collector, sensor) == list(range(50, 500))
    stderr = running.stop()
    lost = [line for line in stderr.splitlines() if "lost the connection to the MQTT broker" in line]
    assert len(lost) == 1, stderr
    assert lost[0].endswith(f"127.0.0.1:{broker.port}: the broker or the network closed it; "
                            "retrying every 5 s at most, readings wait on disk")


def test_sigkill_mid_backlog_redelivers_with_the_same_ids_and_loses_nothing(broker, tmp_path, publisher):
    readings = Readings(tmp_path / "logs")
    readings.write(3000)
    collector = Collector(broker, ("edgesense/+/+/reading",))
    config = write_config(tmp_path, broker)
    for _kill in range(3):
        running = publisher(config)
        collector.wait(lambda c: len(c.messages) > 0, what="some readings")
        time.sleep(0.3)
        running.stop(signal.SIGKILL)
    publisher(config)
    wait_all(collector, 3000, timeout=60)
    assert_each_once_in_order(collector, 3000)


def test_a_wrong_password_is_one_line_and_nothing_is_lost_once_it_is_fixed(password_broker, tmp_path, publisher):
    readings = Readings(tmp_path / "logs")
    readings.write(20)
    password_file = tmp_path / "password"
    password_file.write_text("wrong\n")
    collector = Collector(password_broker, ("edgesense/#",), username="board", password="s3cret")
    running = publisher(write_config(tmp_path, password_broker, username="board",
                                     password_file=str(password_file)))
    time.sleep(4)
    assert collector.on(topic("load", "reading")) == []
    password_file.write_text("s3cret\n")
    wait_all(collector, 20)
    assert_each_once_in_order(collector, 20)
    stderr = running.stop()
    refused = [line for line in stderr.splitlines() if "refused the connection" in line]
    assert len(refused) == 1, stderr
    assert "Not authorized" in refused[0]


def test_tls_with_the_given_ca(tls_broker, tmp_path, publisher):
    Readings(tmp_path / "logs").write(5)
    collector = Collector(tls_broker, ("edgesense/#",), tls_ca=tls_broker.files.ca_file)
    running = publisher(write_config(tmp_path, tls_broker, tls=True, ca_file=str(tls_broker.files.ca_file)))
    wait_all(collector, 5)
    running.stop()


def test_tls_with_an_untrusted_certificate_is_one_clear_line(tls_broker, tmp_path, publisher):
    Readings(tmp_path / "logs").write(5)
    running = publisher(write_config(tmp_path, tls_broker, tls=True))
    time.sleep(3)
    stderr = running.stop()
    lines = [line for line in stderr.splitlines() if "certificate was not accepted" in line]
    assert len(lines) == 1, stderr


def discovery_of(broker):
    return {topic: json.loads(payload) for topic, payload in retained(broker, "homeassistant/#").items()
            if payload}


def test_discovery_announces_one_entity_per_sensor_with_its_topics(broker, tmp_path, publisher):
    Readings(tmp_path / "logs").write(1)
    collector = Collector(broker, ("homeassistant/#",))
    running = publisher(write_config(tmp_path, broker, sensors=("load", "disk")))
    collector.wait(lambda c: len(c.messages) >= 2, what="discovery")
    running.stop()
    configs = discovery_of(broker)
    assert sorted(configs) == [f"homeassistant/sensor/{NODE}/disk/config", f"homeassistant/sensor/{NODE}/load/config"]
    disk = configs[f"homeassistant/sensor/{NODE}/disk/config"]
    assert disk["unique_id"] == f"{NODE}_disk"
    assert disk["state_topic"] == topic("disk", "state")
    assert disk["value_template"] == "{{ value_json.value }}"
    assert disk["unit_of_measurement"] == "%"
    assert disk["availability_topic"] == f"edgesense/{NODE}/availability"
    assert disk["expire_after"] == 7
    assert disk["device"]["identifiers"] == [f"edgesense_{NODE}"]
    assert disk["device"]["name"] == NODE
    assert {"model", "sw_version", "manufacturer"} <= set(disk["device"])
    assert "device_class" not in configs[f"homeassistant/sensor/{NODE}/load/config"]


def test_a_removed_sensor_has_its_discovery_cleared(broker, tmp_path, publisher):
    Readings(tmp_path / "logs").write(1)
    running = publisher(write_config(tmp_path, broker, sensors=("load", "disk")))
    Collector(broker, ("homeassistant/#",)).wait(lambda c: len(c.messages) >= 2, what="discovery")
    running.stop()
    running = publisher(write_config(tmp_path, broker, sensors=("load",)))
    collector = Collector(broker, (f"homeassistant/sensor/{NODE}/disk/config",))
    collector.wait(lambda c: c.on(f"homeassistant/sensor/{NODE}/disk/config")[-1:] == [b""], what="the clearing")
    running.stop()
    assert sorted(discovery_of(broker)) == [f"homeassistant/sensor/{NODE}/load/config"]


def test_discovery_is_sent_again_when_home_assistant_comes_online(broker, tmp_path, publisher):
    import paho.mqtt.client as mqtt

    Readings(tmp_path / "logs").write(1)
    collector = Collector(broker, ("homeassistant/sensor/#",))
    running = publisher(write_config(tmp_path, broker, sensors=("load",)))
    collector.wait(lambda c: len(c.messages) == 1, what="discovery")
    time.sleep(0.5)
    home_assistant = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    home_assistant.connect("127.0.0.1", broker.port)
    home_assistant.loop_start()
    home_assistant.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
    home_assistant.disconnect()
    home_assistant.loop_stop()
    collector.wait(lambda c: len(c.messages) == 2, what="discovery again")
    running.stop()


def test_without_discovery_nothing_is_announced_and_earlier_configs_are_cleared(broker, tmp_path, publisher):
    Readings(tmp_path / "logs").write(1)
    running = publisher(write_config(tmp_path, broker, sensors=("load",)))
    Collector(broker, ("homeassistant/#",)).wait(lambda c: len(c.messages) >= 1, what="discovery")
    running.stop()
    collector = Collector(broker, ("homeassistant/#",))
    running = publisher(write_config(tmp_path, broker, sensors=("load",), discovery=False))
    collector.wait(lambda c: c.on(f"homeassistant/sensor/{NODE}/load/config")[-1:] == [b""], what="the clearing")
    running.stop()
    assert discovery_of(broker) == {}


def test_the_broker_down_when_the_publisher_starts_loses_nothing(broker, tmp_path, publisher):
    topics = ("edgesense/+/+/reading",)
    Collector(broker, topics, session="consumer").close()  # the broker keeps what it misses
    broker.stop()
    readings = Readings(tmp_path / "logs")
    running = publisher(write_config(tmp_path, broker))
    readings.write(30)
    time.sleep(2)
    broker.start()
    collector = Collector(broker, topics, session="consumer")
    readings.write(30)
    wait_all(collector, 60)
    assert_each_once_in_order(collector, 60)
    stderr = running.stop()
    assert stderr.count("connection refused") == 1, stderr


def test_readings_the_budget_deletes_during_an_outage_are_counted_and_the_rest_arrive(broker, tmp_path, publisher):
    from app.backlog import publisher_status

    readings = Readings(tmp_path / "logs", max_file_bytes=4096, max_total_bytes=12288, compress=False)
    readings.write(10, sensors=("load",))
    collector = Collector(broker, ("edgesense/+/+/reading",))
    running = publisher(write_config(tmp_path, broker))
    collector.wait(lambda c: len(distinct_numbers(c, "load")) == 10, what="the first readings")
    broker.stop()
    time.sleep(0.5)
    for _ in range(12):  # a file of readings every 0.6 s through a budget of 3 files
        readings.write(40, sensors=("load",))
        time.sleep(0.6)
    broker.start()
    collector = Collector(broker, ("edgesense/+/+/reading",))
    collector.wait(lambda c: distinct_numbers(c, "load")[-1:] == [489], timeout=30, what="the last reading")
    running.stop()
    received = distinct_numbers(collector, "load")
    assert received == list(range(received[0], 490))
    assert publisher_status(tmp_path / "logs")["lost"] == received[0] - 10
    assert received[0] > 10


def test_a_missing_password_file_is_one_line_and_readings_wait(password_broker, tmp_path, publisher):
    Readings(tmp_path / "logs").write(5)
    password_file = tmp_path / "password"
    collector = Collector(password_broker, ("edgesense/#",), username="board", password="s3cret")
    running = publisher(write_config(tmp_path, password_broker, username="board",
                                     password_file=str(password_file)))
    time.sleep(2)
    password_file.write_text("s3cret\n")
    wait_all(collector, 5)
    stderr = running.stop()
    lines = [line for line in stderr.splitlines() if "password file" in line]
    assert len(lines) == 1, stderr
    assert lines[0].endswith(f"cannot read the MQTT password file {password_file}: No such file or directory; "
                             "retrying every 5 s at most, readings wait on disk")


# A Python without paho-mqtt for the first 3 s, then with it, as when pip
# installs it under a running publisher.
PAHO_FOR_LATER = ("import sys, threading\n"
                  "sys.modules['paho'] = None\n"
                  "threading.Timer(3, sys.modules.pop, ('paho',)).start()\n")


def test_paho_missing_is_one_line_and_readings_wait_until_it_can_be_imported(broker, tmp_path, publisher):
    Readings(tmp_path / "logs").write(5)
    collector = Collector(broker, ("edgesense/#",))
    running = publisher(write_config(tmp_path, broker), before=PAHO_FOR_LATER)
    time.sleep(2)
    assert collector.on(topic("load", "reading")) == []
    wait_all(collector, 5)
    assert_each_once_in_order(collector, 5)
    stderr = running.stop()
    missing = [line for line in stderr.splitlines() if "paho" in line]
    assert len(missing) == 1, stderr
    assert missing[0].endswith(
        f"WARNING  [mqtt] is set, but paho-mqtt is not installed for {sys.executable}, so the publisher cannot "
        f"send anything; install it with: {sys.executable} -m pip install 'paho-mqtt>=2.0,<3'; "
        "retrying every 5 s at most, readings wait on disk")
    assert "Traceback" not in stderr


def test_a_network_that_goes_silent_is_noticed_by_keepalive_and_nothing_is_lost(broker, tmp_path, publisher):
    from mqtt_broker import StallingProxy

    proxy = StallingProxy(broker)
    readings = Readings(tmp_path / "logs")
    readings.write(10)
    collector = Collector(broker, ("edgesense/+/+/reading",))
    config = write_config(tmp_path, broker, keepalive=5)
    config.write_text(config.read_text().replace(f"port = {broker.port}", f"port = {proxy.port}"))
    running = publisher(config)
    wait_all(collector, 10)
    proxy.stall()
    readings.write(10)
    wait_all(collector, 20, timeout=30)  # within 1.5 x keepalive, then a new connection
    assert_each_once_in_order(collector, 20)
    stderr = running.stop()
    proxy.close()
    assert len([line for line in stderr.splitlines() if "lost the connection" in line]) == 1, stderr

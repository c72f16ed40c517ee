"""The MQTT publisher against a private Mosquitto on 127.0.0.1.

(a) Backlog drain: 10,000 readings already in readings.jsonl (the backlog
an outage leaves), the publisher started, and the time until a subscriber
has all of them; against one paho client publishing the same 10,000
payloads at QoS 1 to the same broker in the same run (the limit).
(b) The backlog's own cost, the design choice: an SQLite outbox (WAL,
every reading inserted in its own transaction, as a durable outbox must,
deleted in batches of 100 once acknowledged) against the cursor over
readings.jsonl (one fsynced save per batch of acknowledgements): time per
reading and bytes on disk.
(c) Cost at rest: a whole idle tree of 4 sensors at 1 reading/s
(bench/tree.py's), with and without an [mqtt] table, CPU time of every
process over the window (/proc/PID/schedstat) and PSS
(/proc/PID/smaps_rollup): the difference is what the publisher adds.

    python bench/mqtt_bench.py [--readings 10000] [--rest-seconds 60]   (0: no tree)
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import paho.mqtt.client as mqtt  # noqa: E402

from bench.tree import SENSORS as TREE_SENSORS, cpu_seconds, pss_kib  # noqa: E402
from logging_setup.directory import LogDirectory  # noqa: E402
from mqtt_broker import Broker, BrokerFiles  # noqa: E402
from running_tree import RunningTree, session_pids  # noqa: E402

SENSORS = ("s1", "s2", "s3", "s4")
NODE = "bench"


def reading_line(sensor, n):
    return {"ts": "2026-03-14T09:26:53.589+00:00", "sensor": sensor, "type": "load_average",
            "value": n, "unit": "load"}


def write_backlog(folder, count):
    live = LogDirectory(folder, 256 * 1024, 64 << 20, compress=True, report=print).open_live("readings.jsonl")
    for n in range(count):
        live.append((json.dumps(reading_line(SENSORS[n % 4], n), separators=(",", ":")) + "\n").encode())
    live.flush()
    return live


def config(folder, broker):
    sensors = "".join(f'\n[[sensor]]\nname = "{name}"\ntype = "load_average"\ninterval = 1.0\n' for name in SENSORS)
    path = folder / "edgesense.toml"
    path.write_text(f'[logging]\ndir = "{folder / "logs"}"\n\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
                    f'node = "{NODE}"\n{sensors}')
    return path


class Counter:
    """Counts the reading messages that arrive."""

    def __init__(self, broker, topic):
        self.count, self.first, self.last = 0, None, None
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._count
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.ready.wait(10)

    def _count(self, client, userdata, message):
        now = time.monotonic()
        self.first = self.first or now
        self.count += 1
        self.last = now

    def wait(self, count, timeout=300):
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.count >= count

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def drain(broker, count):
    folder = Path(tempfile.mkdtemp(prefix="mqtt-bench-"))
    write_backlog(folder / "logs", count)
    counter = Counter(broker, f"edgesense/{NODE}/+/reading")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "app.publisher", "--config", str(config(folder, broker))],
                               cwd=ROOT, stderr=subprocess.DEVNULL)
    done = counter.wait(count)
    process.terminate()
    process.wait(20)
    counter.close()
    if not done:
        raise SystemExit(f"only {counter.count} of {count} readings arrived")
    return count / (counter.last - started), count / (counter.last - counter.first)


def paho_limit(broker, count):
    payloads = [json.dumps(dict(reading_line(SENSORS[n % 4], n), node=NODE, id=f"x-{n}")).encode()
                for n in range(count)]
    counter = Counter(broker, "limit/#")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    started = time.monotonic()
    infos = [client.publish(f"limit/{SENSORS[n % 4]}/reading", payload, qos=1) for n, payload in enumerate(payloads)]
    for info in infos:
        info.wait_for_publish(60)
    acked = time.monotonic()
    counter.wait(count)
    client.disconnect()
    client.loop_stop()
    counter.close()
    return count / (acked - started), count / (counter.last - started)


def tree_cost(broker, seconds, mqtt):
    """CPU (% of a core) and PSS (MiB) of a whole tree of bench/tree.py's 4
    sensors at 1 s, with or without an [mqtt] table, idle for ``seconds``."""
    table = f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nnode = "{NODE}"\n' if mqtt else ""
    with tempfile.TemporaryDirectory() as directory:
        tree = RunningTree(directory, "forkserver", TREE_SENSORS + table).start()
        try:
            tree.wait_running("load", "disk", "count", "count2")
            time.sleep(5)
            pids = session_pids(tree.pid)
            before = cpu_seconds(pids)
            time.sleep(seconds)
            used = cpu_seconds(pids) - before
            return 100 * used / seconds, pss_kib(pids) / 1024, len(pids)
        finally:
            tree.close()


def outbox_cost(count):
    import sqlite3

    folder = Path(tempfile.mkdtemp(prefix="mqtt-outbox-"))
    lines = [json.dumps(reading_line(SENSORS[n % 4], n), separators=(",", ":")) for n in range(count)]
    db = sqlite3.connect(folder / "outbox.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, line TEXT NOT NULL)")
    started = time.perf_counter()
    for line in lines:
        db.execute("INSERT INTO outbox (line) VALUES (?)", (line,))
    peak = sum(path.stat().st_size for path in folder.iterdir())
    for first in range(1, count + 1, 100):
        db.execute("DELETE FROM outbox WHERE id < ?", (first + 100,))
    done = time.perf_counter()
    db.close()
    sqlite_us = 1e6 * (done - started) / count
    from app.backlog import Backlog

    cursor_folder = Path(tempfile.mkdtemp(prefix="mqtt-cursor-"))
    write_backlog(cursor_folder, count)
    backlog = Backlog(cursor_folder)
    backlog.refresh()
    started = time.perf_counter()
    while True:
        batch = backlog.lines(100)
        if not batch:
            break
        backlog.acknowledge(batch[-1].after)
        backlog.save()
    cursor_us = 1e6 * (time.perf_counter() - started) / count
    cursor_bytes = (cursor_folder / "publisher.cursor.json").stat().st_size
    return sqlite_us, peak, cursor_us, cursor_bytes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=10000)
    parser.add_argument("--rest-seconds", type=float, default=60.0)
    args = parser.parse_args()
    broker = Broker(BrokerFiles(Path(tempfile.mkdtemp(prefix="mqtt-broker-")))).start()
    try:
        limit_acked, limit_received = paho_limit(broker, args.readings)
        from_start, from_first = drain(broker, args.readings)
        sqlite_us, sqlite_bytes, cursor_us, cursor_bytes = outbox_cost(args.readings)
        if args.rest_seconds > 0:
            bare = tree_cost(broker, args.rest_seconds, mqtt=False)
            publishing = tree_cost(broker, args.rest_seconds, mqtt=True)
    finally:
        broker.stop()
    print(f"paho QoS 1 limit: {limit_acked:,.0f} readings/s acknowledged, {limit_received:,.0f}/s received")
    print(f"publisher drain of {args.readings:,}: {from_start:,.0f} readings/s from its start "
          f"({from_start / limit_acked:.2f}x the limit), {from_first:,.0f}/s from the first reading "
          f"({from_first / limit_acked:.2f}x)")
    print(f"backlog of {args.readings:,}: SQLite outbox {sqlite_us:.0f} us a reading, {sqlite_bytes / 1024:.0f} KiB "
          f"on disk beside readings.jsonl; cursor {cursor_us:.1f} us a reading (read, ack, fsynced save "
          f"every 100), {cursor_bytes} bytes")
    if args.rest_seconds <= 0:
        return
    print(f"idle tree of 4 sensors at 1 s (forkserver): {bare[0]:.3f}% of a core, PSS {bare[1]:.1f} MiB, "
          f"{bare[2]} processes; with [mqtt]: {publishing[0]:.3f}%, PSS {publishing[1]:.1f} MiB, "
          f"{publishing[2]} processes; the publisher adds {publishing[0] - bare[0]:.3f}% and "
          f"{publishing[1] - bare[1]:.1f} MiB")


if __name__ == "__main__":
    main()

"""Logging benchmark: edgesense's path against the stdlib cookbook path and a
plain FileHandler in one process (the upper bound), in one run, on the same
machine, with the same line format.

(a) throughput: 4 processes x 20,000 records, from the first log call until
    every line is on disk;
(b) latency: p50/p99 from the log call to the line being readable in the
    file, at 100 records/s.

Each figure is also printed as a ratio to the upper bound. Throughput is
the best of ``--repeat`` runs of each path, interleaved (the machine may be
busy with other work); the median is printed too. Run from the repository root:

    python bench/logging_bench.py [--records 20000] [--latency-seconds 10]
"""

import argparse
import gzip
import logging
import logging.handlers
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logging_setup import LogSettings, LogTransport, configure_process, run_listener  # noqa: E402
from logging_setup.formats import LOG_FORMAT  # noqa: E402
from logging_setup.names import oldest_first  # noqa: E402

WRITERS = 4
LATENCY_RATE = 100
CTX = multiprocessing.get_context("fork")


# --- the three paths -------------------------------------------------------

def plain_file_handler(path):
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


def use_only(handler):
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


class EdgesensePath:
    name = "edgesense"

    def __init__(self, directory):
        self.settings = LogSettings(dir=directory, max_total_bytes=256 * 1024 * 1024, console=False)
        self.transport = LogTransport.create()
        self.listener = CTX.Process(target=run_listener, args=(self.transport.receiver, self.settings))
        self.listener.start()
        self.live_file = directory / "edgesense.log"

    def configure_writer(self):
        configure_process(self.transport.sender)

    def finish(self):
        self.transport.sender.send_stop()
        self.listener.join()
        self.transport.close()

    def lines(self):
        directory = self.settings.dir
        rotated = [directory / name for name in oldest_first(os.listdir(directory), "edgesense.log")]
        data = b"".join(gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in rotated)
        return (data + self.live_file.read_bytes()).decode().splitlines()


def cookbook_listener(queue, path):
    """The logging cookbook's listener process: get, handle, until None."""
    use_only(plain_file_handler(path))
    while True:
        record = queue.get()
        if record is None:
            break
        logging.getLogger(record.name).handle(record)


class CookbookPath:
    name = "stdlib cookbook"

    def __init__(self, directory):
        self.live_file = directory / "cookbook.log"
        self.queue = CTX.Queue(-1)
        self.listener = CTX.Process(target=cookbook_listener, args=(self.queue, self.live_file))
        self.listener.start()

    def configure_writer(self):
        use_only(logging.handlers.QueueHandler(self.queue))

    def finish(self):
        self.queue.put_nowait(None)
        self.listener.join()

    def lines(self):
        return self.live_file.read_text().splitlines()


# --- (a) throughput ---------------------------------------------------------

def throughput_writer(path, writer, count, start):
    path.configure_writer()
    log = logging.getLogger("bench.writer")
    start.wait()
    for number in range(count):
        log.info("writer %d record %d of the throughput run", writer, number)


def throughput_of(path_class, directory, count):
    """Records per second through ``path_class`` from WRITERS processes."""
    path = path_class(directory)
    start = CTX.Event()
    writers = [CTX.Process(target=throughput_writer, args=(path, w, count, start), name=f"sensor:w{w}")
               for w in range(WRITERS)]
    for writer in writers:
        writer.start()
    time.sleep(0.5)  # every writer configured and waiting
    started = time.perf_counter()
    start.set()
    for writer in writers:
        writer.join()
    path.finish()
    elapsed = time.perf_counter() - started
    written = sum(1 for line in path.lines() if "of the throughput run" in line)
    assert written == WRITERS * count, f"{path.name}: {written} lines of {WRITERS * count}"
    return WRITERS * count / elapsed


def upper_bound_throughput(directory, count):
    """One process writing every record with a plain FileHandler."""
    handler = plain_file_handler(directory / "plain.log")
    use_only(handler)
    log = logging.getLogger("bench.writer")
    started = time.perf_counter()
    for number in range(WRITERS * count):
        log.info("writer %d record %d of the throughput run", 0, number)
    handler.close()
    return WRITERS * count / (time.perf_counter() - started)


# --- (b) latency ------------------------------------------------------------

def paced_writer(path, count):
    """Logs ``count`` records at LATENCY_RATE, each carrying its send time."""
    if path is not None:
        path.configure_writer()
    log = logging.getLogger("bench.latency")
    started = time.monotonic()
    for number in range(count):
        time.sleep(max(0.0, started + number / LATENCY_RATE - time.monotonic()))
        log.info("latency probe %d", time.monotonic_ns())


def follow_latencies(live_file, count, writer_done):
    """Read the file as it grows; for each probe line, now minus its send time.
    Stops after ``count`` probes, or a second after the writer is done."""
    latencies = []
    give_up = None
    while not live_file.exists():
        time.sleep(0.001)
    with open(live_file, "rb") as file:
        pending = b""
        while len(latencies) < count:
            chunk = file.read()
            if not chunk:
                if give_up is None and writer_done():
                    give_up = time.monotonic() + 1.0
                if give_up is not None and time.monotonic() > give_up:
                    break
                time.sleep(0.00005)
                continue
            now = time.monotonic_ns()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            latencies.extend((now - int(line.rsplit(b" ", 1)[1])) / 1e6 for line in lines if b"latency probe" in line)
    return latencies


def latency_of(path_class, directory, count):
    path = path_class(directory)
    writer = CTX.Process(target=paced_writer, args=(path, count))
    writer.start()
    latencies = follow_latencies(path.live_file, count, lambda: not writer.is_alive())
    writer.join()
    path.finish()
    return latencies


def upper_bound_latency(directory, count):
    """The plain FileHandler, in a writer process of its own."""
    live_file = directory / "plain-latency.log"
    writer = CTX.Process(target=plain_latency_writer, args=(live_file, count))
    writer.start()
    latencies = follow_latencies(live_file, count, lambda: not writer.is_alive())
    writer.join()
    return latencies


def plain_latency_writer(live_file, count):
    use_only(plain_file_handler(live_file))
    paced_writer(None, count)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- report -------------------------------------------------------------------

UPPER_BOUND = "plain FileHandler (upper bound)"
PATHS = {
    UPPER_BOUND: (upper_bound_throughput, upper_bound_latency),
    "edgesense": (partial(throughput_of, EdgesensePath), partial(latency_of, EdgesensePath)),
    "stdlib cookbook": (partial(throughput_of, CookbookPath), partial(latency_of, CookbookPath)),
}


def measure(scratch, records, probes, repeat):
    """Throughput runs interleaved across the paths (so a busy moment of the
    machine hits them alike), then one latency run each."""
    rates = {label: [] for label in PATHS}
    for run in range(repeat):
        for label, (throughput, _) in PATHS.items():
            directory = scratch / f"{label.split()[0]}-{run}"
            directory.mkdir()
            rates[label].append(throughput(directory, records))
    latencies = {}
    for label, (_, latency) in PATHS.items():
        directory = scratch / f"{label.split()[0]}-latency"
        directory.mkdir()
        latencies[label] = latency(directory, probes)
    return rates, latencies


def report(rates, latencies, records, probes):
    bound_rate = max(rates[UPPER_BOUND])
    bound_p50, bound_p99 = (percentile(latencies[UPPER_BOUND], q) for q in (0.5, 0.99))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, start method {CTX.get_start_method()}; "
          f"throughput: {WRITERS} x {records} records, best of {len(rates[UPPER_BOUND])} interleaved runs; "
          f"latency: {probes} records at {LATENCY_RATE}/s")
    print(f"{'path':32} {'records/s':>9} {'ratio':>6} {'median':>7} {'p50 ms':>7} {'ratio':>6} {'p99 ms':>7} {'ratio':>6}")
    for label in PATHS:
        best, median = max(rates[label]), statistics.median(rates[label])
        p50, p99 = (percentile(latencies[label], q) for q in (0.5, 0.99))
        print(f"{label:32} {best:9.0f} {best / bound_rate:5.2f}x {median / bound_rate:6.2f}x "
              f"{p50:7.3f} {p50 / bound_p50:5.1f}x {p99:7.3f} {p99 / bound_p99:5.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per writer (throughput)")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="length of each latency run")
    parser.add_argument("--repeat", type=int, default=5, help="throughput runs per path; the best counts")
    args = parser.parse_args()
    probes = int(args.latency_seconds * LATENCY_RATE)
    with tempfile.TemporaryDirectory() as scratch:
        rates, latencies = measure(Path(scratch), args.records, probes, args.repeat)
    report(rates, latencies, args.records, probes)


if __name__ == "__main__":
    main()

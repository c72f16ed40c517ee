"""Logging benchmark: edgesense's path against the stdlib cookbook path and a
plain FileHandler in one process (the upper bound), in one run, on the same
machine, with the same line format.

(a) throughput: 4 processes x 20,000 records, from the first log call until
    every line is on disk, for edgesense without rotation and with 1 MiB
    files and gzip (its default compression);
(b) CPU per record of the whole tree: every writer and listener reads its
    own ``/proc/self/stat`` when it is done, and the forkserver's CPU over
    the run is added (the parent's rusage sees neither forkserver's
    children nor their children);
(c) latency: p50/p99 from the log call to the line being readable in the
    file, 4 processes x 100 records/s, edgesense rotating 64 KiB files
    with gzip (several rotations a run), followed across rotations as
    ``tail -F`` does; and, as the floor of any path through a listener
    process, a bare datagram's trip from the same paced writers to a
    process waiting in poll (no logging, no file). The steady state is
    measured: the first half second of probes is not counted, and no
    writer exits before all have sent their last.

Each figure is also printed as a ratio to the upper bound. Throughput is
the best of ``--repeat`` runs of each path, interleaved (the machine may be
busy with other work); the median is printed too. The sensor's own cost
per call is bench/sensor_call_cost.py, the listener's per record
bench/listener_record_cost.py. Run from the repository root:

    python bench/logging_bench.py [--records 20000] [--latency-seconds 10] [--start-method fork]
"""

import argparse
import gzip
import logging
import logging.handlers
import multiprocessing
import multiprocessing.forkserver
import os
import select
import socket
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
WARM_UP_SECONDS = 0.5
"""Probes not counted at the start of a latency run, while the writers and
the listener are still starting on the same two CPUs."""
MIB = 1024 * 1024
CTX = multiprocessing.get_context("fork")
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid="self"):
    """User and system CPU of one process, from its /proc stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def forkserver_cpu():
    """CPU of the forkserver process so far (0 unless it runs)."""
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    try:
        return cpu_seconds(pid) if pid else 0.0
    except OSError:
        return 0.0


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


def measured_listener(receiver, settings, cpu):
    try:
        run_listener(receiver, settings)
    finally:
        cpu.value = cpu_seconds()


class EdgesensePath:
    name = "edgesense"
    max_file_bytes = 256 * MIB
    compress = False

    def __init__(self, directory):
        self.settings = LogSettings(dir=directory, max_file_bytes=self.max_file_bytes,
                                    max_total_bytes=256 * MIB, compress=self.compress, console=False)
        self.transport = LogTransport.create()
        self.listener_cpu = CTX.Value("d", 0.0)
        self.listener = CTX.Process(target=measured_listener,
                                    args=(self.transport.receiver, self.settings, self.listener_cpu))
        self.listener.start()
        self.live_file = directory / "edgesense.log"

    def writer_setup(self):
        return partial(configure_process, self.transport.sender)

    def finish(self):
        self.transport.sender.send_stop()
        self.listener.join()
        self.transport.close()
        return self.listener_cpu.value

    def lines(self):
        directory = self.settings.dir
        rotated = [directory / name for name in oldest_first(os.listdir(directory), "edgesense.log")]
        data = b"".join(gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in rotated)
        return (data + self.live_file.read_bytes()).decode().splitlines()


class RotatingEdgesensePath(EdgesensePath):
    name = "edgesense, 1 MiB files, gzip"
    max_file_bytes = MIB
    compress = True


class LatencyEdgesensePath(EdgesensePath):
    name = "edgesense, 64 KiB files, gzip"
    max_file_bytes = 64 * 1024
    compress = True


def cookbook_listener(queue, path, cpu):
    """The logging cookbook's listener process: get, handle, until None."""
    use_only(plain_file_handler(path))
    while True:
        record = queue.get()
        if record is None:
            break
        logging.getLogger(record.name).handle(record)
    cpu.value = cpu_seconds()


def use_queue_handler(queue):
    use_only(logging.handlers.QueueHandler(queue))


class CookbookPath:
    name = "stdlib cookbook"

    def __init__(self, directory):
        self.live_file = directory / "cookbook.log"
        self.queue = CTX.Queue(-1)
        self.listener_cpu = CTX.Value("d", 0.0)
        self.listener = CTX.Process(target=cookbook_listener, args=(self.queue, self.live_file, self.listener_cpu))
        self.listener.start()

    def writer_setup(self):
        return partial(use_queue_handler, self.queue)

    def finish(self):
        self.queue.put_nowait(None)
        self.listener.join()
        return self.listener_cpu.value

    def lines(self):
        return self.live_file.read_text().splitlines()


# --- (a) throughput ---------------------------------------------------------

def throughput_writer(setup, writer, count, start, cpu):
    setup()
    log = logging.getLogger("bench.writer")
    start.wait()
    before = cpu_seconds()
    for number in range(count):
        log.info("writer %d record %d of the throughput run", writer, number)
    cpu[writer] = cpu_seconds() - before


def throughput_of(path_class, directory, count):
    """Records per second through ``path_class`` from WRITERS processes, and
    the CPU seconds per record of every process of the tree."""
    path = path_class(directory)
    start = CTX.Event()
    writers_cpu = CTX.Array("d", WRITERS)
    writers = [CTX.Process(target=throughput_writer, args=(path.writer_setup(), w, count, start, writers_cpu), name=f"sensor:w{w}")
               for w in range(WRITERS)]
    for writer in writers:
        writer.start()
    time.sleep(0.5)  # every writer configured and waiting
    listener_before, forkserver_before = cpu_seconds(path.listener.pid), forkserver_cpu()
    started = time.perf_counter()
    start.set()
    for writer in writers:
        writer.join()
    listener_cpu = path.finish()
    elapsed = time.perf_counter() - started
    written = sum(1 for line in path.lines() if "of the throughput run" in line)
    assert written == WRITERS * count, f"{path.name}: {written} lines of {WRITERS * count}"
    tree_cpu = sum(writers_cpu) + listener_cpu - listener_before + forkserver_cpu() - forkserver_before
    return WRITERS * count / elapsed, tree_cpu / (WRITERS * count)


def upper_bound_throughput(directory, count):
    """One process writing every record with a plain FileHandler."""
    handler = plain_file_handler(directory / "plain.log")
    use_only(handler)
    log = logging.getLogger("bench.writer")
    started, before = time.perf_counter(), cpu_seconds()
    for number in range(WRITERS * count):
        log.info("writer %d record %d of the throughput run", 0, number)
    handler.close()
    return WRITERS * count / (time.perf_counter() - started), (cpu_seconds() - before) / (WRITERS * count)


# --- (b) latency ------------------------------------------------------------

def paced(count, probe, warm_up):
    """Calls ``warm_up(send_time_ns)`` for WARM_UP_SECONDS, then
    ``probe(send_time_ns)`` ``count`` times, all at LATENCY_RATE."""
    started = time.monotonic()
    warm_ups = int(WARM_UP_SECONDS * LATENCY_RATE)
    for number in range(warm_ups + count):
        time.sleep(max(0.0, started + number / LATENCY_RATE - time.monotonic()))
        (warm_up if number < warm_ups else probe)(time.monotonic_ns())


def paced_writer(setup, all_sent, count):
    """Logs ``count`` records at LATENCY_RATE after the warm-up, each
    carrying its send time; then waits for the other writers."""
    if setup is not None:
        setup()
    log = logging.getLogger("bench.latency")
    paced(count, partial(log.info, "latency probe %d"), partial(log.info, "warm-up probe %d"))
    all_sent.wait(WRITERS * count / LATENCY_RATE)


def paced_datagram_writer(sender, all_sent, count):
    """Sends ``count`` bare datagrams at LATENCY_RATE after the warm-up
    (whose datagrams say 0), each its send time; then waits for the others."""
    paced(count, lambda sent: sender.send(sent.to_bytes(8, "little")), lambda _: sender.send(bytes(8)))
    all_sent.wait(WRITERS * count / LATENCY_RATE)


def datagram_hop_latency(directory, count):
    """The floor of any path through a listener process: a bare datagram
    from each paced writer to a receiver that waits in poll, with no
    logging at either end (``directory`` is unused)."""
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    writers, done = paced_writers(paced_datagram_writer, (sender,), count)
    poller = select.poll()
    poller.register(receiver, select.POLLIN)
    latencies = []
    while len(latencies) < WRITERS * count and (poller.poll(1000) or not done()):
        while (data := _received(receiver)) is not None:
            if sent := int.from_bytes(data, "little"):
                latencies.append((time.monotonic_ns() - sent) / 1e6)
    for writer in writers:
        writer.join()
    receiver.close()
    sender.close()
    return latencies


def _received(receiver):
    try:
        return receiver.recv(8, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None


def follow_latencies(live_file, count, writers_done):
    """Read the file as it grows, following it across rotations as
    ``tail -F`` does; for each probe line, now minus its send time. Stops
    after ``count`` probes, or a second after the writers are done."""
    latencies = []
    give_up = None
    while not live_file.exists():
        time.sleep(0.001)
    file = open(live_file, "rb")
    pending = b""
    while len(latencies) < count:
        chunk = file.read()
        if not chunk:
            if _rotated_away(file, live_file):
                file.close()
                file = open(live_file, "rb")
                continue
            if give_up is None and writers_done():
                give_up = time.monotonic() + 1.0
            if give_up is not None and time.monotonic() > give_up:
                break
            time.sleep(0.00005)
            continue
        now = time.monotonic_ns()
        pending += chunk
        *lines, pending = pending.split(b"\n")
        latencies.extend((now - int(line.rsplit(b" ", 1)[1])) / 1e6 for line in lines if b"latency probe" in line)
    file.close()
    return latencies


def _rotated_away(file, live_file):
    try:
        return os.stat(live_file).st_ino != os.fstat(file.fileno()).st_ino
    except FileNotFoundError:
        return False


def paced_writers(target, args, count):
    """WRITERS processes each logging ``count`` probes; a function that says
    whether all are done. No writer exits before all have sent their last."""
    all_sent = CTX.Barrier(WRITERS)
    writers = [CTX.Process(target=target, args=(*args, all_sent, count)) for _ in range(WRITERS)]
    for writer in writers:
        writer.start()

    def done():
        # Holds the barrier too: a started Process lets go of its arguments,
        # and a child started later must still find the barrier's semaphore.
        return all_sent is not None and not any(writer.is_alive() for writer in writers)
    return writers, done


def latency_of(path_class, directory, count):
    path = path_class(directory)
    writers, done = paced_writers(paced_writer, (path.writer_setup(),), count)
    latencies = follow_latencies(path.live_file, WRITERS * count, done)
    for writer in writers:
        writer.join()
    path.finish()
    return latencies


def upper_bound_latency(directory, count):
    """Plain FileHandlers appending to one file, in writer processes of their own."""
    live_file = directory / "plain-latency.log"
    writers, done = paced_writers(plain_latency_writer, (live_file,), count)
    latencies = follow_latencies(live_file, WRITERS * count, done)
    for writer in writers:
        writer.join()
    return latencies


def plain_latency_writer(live_file, all_sent, count):
    use_only(plain_file_handler(live_file))
    paced_writer(None, all_sent, count)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- report -------------------------------------------------------------------

UPPER_BOUND = "plain FileHandler (upper bound)"
PATHS = {
    UPPER_BOUND: (upper_bound_throughput, upper_bound_latency),
    "bare datagram, no logging (floor)": (None, datagram_hop_latency),
    EdgesensePath.name: (partial(throughput_of, EdgesensePath), None),
    RotatingEdgesensePath.name: (partial(throughput_of, RotatingEdgesensePath), None),
    LatencyEdgesensePath.name: (None, partial(latency_of, LatencyEdgesensePath)),
    CookbookPath.name: (partial(throughput_of, CookbookPath), partial(latency_of, CookbookPath)),
}


def measure(scratch, records, probes, repeat):
    """Throughput runs interleaved across the paths (so a busy moment of the
    machine hits them alike), then one latency run each."""
    runs = {label: [] for label, (throughput, _) in PATHS.items() if throughput}
    for run in range(repeat):
        for label in runs:
            directory = scratch / f"throughput-{len(os.listdir(scratch))}"
            directory.mkdir()
            runs[label].append(PATHS[label][0](directory, records))
    latencies = {}
    for label, (_, latency) in PATHS.items():
        if latency:
            directory = scratch / f"latency-{len(os.listdir(scratch))}"
            directory.mkdir()
            latencies[label] = latency(directory, probes)
    return runs, latencies


def report(runs, latencies, records, probes):
    bound_rate = max(rate for rate, _ in runs[UPPER_BOUND])
    bound_cpu = min(cpu for _, cpu in runs[UPPER_BOUND])
    bound_p99 = percentile(latencies[UPPER_BOUND], 0.99)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"start method {CTX.get_start_method()}; throughput: {WRITERS} x {records} records, best of "
          f"{len(runs[UPPER_BOUND])} interleaved runs; latency: {WRITERS} x {probes} records at {LATENCY_RATE}/s")
    print(f"{'path':32} {'records/s':>9} {'ratio':>6} {'median':>7} {'cpu us/rec':>10} {'ratio':>6} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}")
    for label in PATHS:
        line = f"{label:32} "
        if label in runs:
            rates = [rate for rate, _ in runs[label]]
            cpu = min(cpu for _, cpu in runs[label])
            line += (f"{max(rates):9.0f} {max(rates) / bound_rate:5.2f}x {statistics.median(rates) / bound_rate:6.2f}x "
                     f"{cpu * 1e6:10.1f} {cpu / bound_cpu:5.2f}x ")
        else:
            line += " " * 45
        if label in latencies:
            p50, p99 = (percentile(latencies[label], q) for q in (0.5, 0.99))
            line += f"{p50:7.3f} {p99:7.3f} {p99 / bound_p99:5.1f}x"
        print(line.rstrip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per writer (throughput)")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="length of each latency run")
    parser.add_argument("--repeat", type=int, default=5, help="throughput runs per path; the best counts")
    parser.add_argument("--start-method", choices=("fork", "forkserver", "spawn"), default="forkserver")
    args = parser.parse_args()
    global CTX
    CTX = multiprocessing.get_context(args.start_method)
    probes = int(args.latency_seconds * LATENCY_RATE)
    with tempfile.TemporaryDirectory() as scratch:
        runs, latencies = measure(Path(scratch), args.records, probes, args.repeat)
    report(runs, latencies, args.records, probes)


if __name__ == "__main__":
    main()

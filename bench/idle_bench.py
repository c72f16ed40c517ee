"""Idle cost of one sensor worker, against the article's 1 s polling loop.

Runs, side by side for the same window (30 s by default):

- a worker reading a button on mock pins every second, logging through a
  real log listener into a temporary directory;
- a baseline process doing what the article's listener does: drain a
  multiprocessing queue, then ``sleep(1)``, forever.

For each it reports CPU time as a share of one core and wakeups per second
(voluntary context switches, summed over the process's threads, from
/proc/PID/task/*/status), and for the worker wakeups per reading. Ratios
compare the worker with the baseline measured in the same run. Targets:
under 0.2% of a core and about one wakeup per reading.

Usage: python -m bench.idle_bench [--seconds 30] [--interval 1.0]
"""

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from app.config import SensorConfig
from app.heartbeat import Heartbeat
from app.worker import run_worker
from logging_setup import LogSettings, LogTransport, run_listener


def article_poll(queue):
    """The article's design point: poll a queue, sleep a second, repeat."""
    while True:
        while not queue.empty():
            queue.get()
        time.sleep(1)


def cpu_seconds(pid):
    """CPU time of every thread of ``pid`` (schedstat: nanoseconds on CPU)."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total_ns += int((task / "schedstat").read_text().split()[0])
    return total_ns / 1e9


def voluntary_switches(pid):
    """Voluntary context switches of every thread of ``pid``: each is a
    sleep that ended, i.e. a wakeup."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def sample(pid):
    return cpu_seconds(pid), voluntary_switches(pid)


def measure(pids, seconds):
    """CPU share and wakeups per second of each pid over ``seconds``."""
    before = {name: sample(pid) for name, pid in pids.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    after = {name: sample(pid) for name, pid in pids.items()}
    return elapsed, {
        name: ((after[name][0] - before[name][0]) / elapsed,
               (after[name][1] - before[name][1]) / elapsed)
        for name in pids}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--start-method", default="forkserver")
    args = parser.parse_args()

    ctx = multiprocessing.get_context(args.start_method)
    log_dir = Path(tempfile.mkdtemp(prefix="edgesense-idle-bench-"))
    transport = LogTransport.create()
    listener = ctx.Process(
        target=run_listener, name="log-listener",
        args=(transport.receiver, LogSettings(dir=log_dir, console=False)))
    listener.start()
    heartbeat = Heartbeat.create(ctx)
    stop_reader, stop_writer = ctx.Pipe(duplex=False)
    config = SensorConfig(name="door", type="button", interval=args.interval,
                          options={"pin": 17})
    worker = ctx.Process(
        target=run_worker, name="sensor:door", args=(config,),
        kwargs={"pin_factory": "mock", "sender": transport.sender,
                "stop": stop_reader, "heartbeat": heartbeat})
    article_queue = ctx.Queue()  # kept alive: the child opens it by name
    baseline = ctx.Process(target=article_poll, args=(article_queue,),
                           name="article-poll", daemon=True)
    worker.start()
    baseline.start()
    try:
        while heartbeat.readings < 2:  # let imports and start-up settle
            time.sleep(0.1)
        readings_before = heartbeat.readings
        elapsed, results = measure(
            {"worker": worker.pid, "listener": listener.pid,
             "article poll": baseline.pid}, args.seconds)
        readings = heartbeat.readings - readings_before
    finally:
        stop_writer.send("stop")
        worker.join(10)
        baseline.kill()
        transport.sender.send_stop()
        listener.join(10)
        transport.close()

    report(args, elapsed, results, readings, worker.exitcode)


def report(args, elapsed, results, readings, worker_exit):
    print(f"idle bench: {elapsed:.1f} s, interval {args.interval} s,"
          f" start method {args.start_method}, {os.cpu_count()} CPUs")
    print(f"{'process':<14} {'CPU % of a core':>16} {'wakeups/s':>10}")
    for name, (cpu_share, wakeups) in results.items():
        print(f"{name:<14} {100 * cpu_share:>16.3f} {wakeups:>10.2f}")
    worker_cpu, worker_wakeups = results["worker"]
    base_cpu, base_wakeups = results["article poll"]
    per_reading = worker_wakeups * elapsed / readings if readings else float("nan")
    print(f"worker readings: {readings} ({readings / elapsed:.2f}/s),"
          f" wakeups per reading: {per_reading:.2f}, exit status {worker_exit}")
    print(f"ratio worker/article poll: CPU {worker_cpu / base_cpu:.2f}x,"
          f" wakeups {worker_wakeups / base_wakeups:.2f}x")
    verdict = "meets" if 100 * worker_cpu < 0.2 else "misses"
    print(f"target < 0.2% of a core: {verdict} ({100 * worker_cpu:.3f}%)")


if __name__ == "__main__":
    main()

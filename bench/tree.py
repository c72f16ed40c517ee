"""The cost of a running tree of 4 sensors at 1 s, per start method.

For each start method: the time from ``edgesense run`` to READY=1, the CPU
time of the whole tree over an idle window, and its proportional memory
(PSS, /proc/PID/smaps_rollup). Baselines measured in the same run: an idle
Python interpreter (memory) and the article's one-second polling loop (CPU).

    python bench/tree.py [--seconds 60]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from running_tree import RunningTree, session_pids  # noqa: E402

SENSORS = """
[[sensor]]
name = "load"
type = "load_average"
interval = 1

[[sensor]]
name = "disk"
type = "disk_usage"
interval = 1

[[sensor]]
name = "count"
type = "sensorkit:Counter"
interval = 1

[[sensor]]
name = "count2"
type = "sensorkit:Counter"
interval = 1
"""

def cpu_seconds(pids):
    """CPU time so far of ``pids``, in nanosecond resolution (schedstat)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except OSError:
            continue
    return total / 1e9


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def measure_tree(start_method, seconds):
    with tempfile.TemporaryDirectory() as directory:
        notify_path = os.path.join(directory, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(30)
        tree = RunningTree(directory, start_method, SENSORS, env={"NOTIFY_SOCKET": notify_path})
        launched = time.monotonic()
        tree.start()
        try:
            while notify.recv(4096) != b"READY=1":
                pass
            ready_after = time.monotonic() - launched
            time.sleep(3)
            pids = session_pids(tree.pid)
            before = cpu_seconds(pids)
            time.sleep(seconds)
            cpu = cpu_seconds(pids) - before
            return {"ready": ready_after, "cpu": cpu / seconds, "pss": pss_kib(pids), "processes": len(pids)}
        finally:
            tree.close()
            notify.close()


def measure_baselines(seconds):
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    poller = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    try:
        time.sleep(1)
        memory = pss_kib([idle.pid])
        before = cpu_seconds([poller.pid])
        time.sleep(seconds)
        cpu = (cpu_seconds([poller.pid]) - before) / seconds
        return {"python_pss": memory, "poll_cpu": cpu}
    finally:
        idle.kill()
        poller.kill()
        idle.wait()
        poller.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window per start method")
    args = parser.parse_args()
    baseline = measure_baselines(min(args.seconds, 30))
    print(f"baseline: idle python interpreter PSS {baseline['python_pss'] / 1024:.1f} MiB; "
          f"1 s polling loop CPU {baseline['poll_cpu'] * 100:.3f}% of a core")
    print(f"{'method':<11} {'READY after':>11} {'tree CPU':>10} {'x poll':>8} {'tree PSS':>10} {'x python':>9} {'procs':>6}")
    for method in ("forkserver", "fork", "spawn"):
        result = measure_tree(method, args.seconds)
        print(
            f"{method:<11} {result['ready']:>10.2f}s {result['cpu'] * 100:>9.3f}% "
            f"{result['cpu'] / max(baseline['poll_cpu'], 1e-9):>7.1f}x {result['pss'] / 1024:>8.1f}MiB "
            f"{result['pss'] / baseline['python_pss']:>8.1f}x {result['processes']:>6}"
        )


if __name__ == "__main__":
    main()

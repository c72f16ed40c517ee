"""Chaos: a tree of 4 sensors while a random process of it (a worker or the
listener) is SIGKILLed every 1-3 s.

Afterwards every sensor must be running, and the log must hold every
numbered reading of the steady sensors, except those of an incarnation
that was killed before it could send them. Each incarnation of a Counter
counts from 0, so a gap inside one incarnation is a lost record.

    python bench/chaos.py [--minutes 10] [--start-method forkserver]
"""

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from running_tree import RunningTree, wait_for  # noqa: E402

SENSORS = "".join(
    f"""
[[sensor]]
name = "steady{n}"
type = "sensorkit:Counter"
interval = 0.1
"""
    for n in range(4)
)

CHAOS_POLICY = """
backoff_initial = 0.2
backoff_max = 2
max_restarts = 1000
"""
"""Short delays and no failed state: the chaos is the point, not the backoff."""


def incarnations(values):
    """Split a Counter's readings where it starts again from 0."""
    runs, current = [], []
    for value in values:
        if value == 0 and current:
            runs.append(current)
            current = []
        current.append(value)
    if current:
        runs.append(current)
    return runs


def lost_in(run):
    return len(set(range(run[0], run[-1] + 1)) - set(run)) + run[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--start-method", default="forkserver", choices=["fork", "forkserver", "spawn"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as directory:
        tree = RunningTree(directory, args.start_method, SENSORS, CHAOS_POLICY)
        tree.start()
        try:
            names = [f"steady{n}" for n in range(4)]
            tree.wait_running(*names)
            kills = {"worker": 0, "listener": 0}
            end = time.monotonic() + args.minutes * 60
            while time.monotonic() < end:
                time.sleep(rng.uniform(1, 3))
                state = tree.state()
                targets = [("listener", state["listener"]["pid"])]
                targets += [("worker", s["pid"]) for s in state["sensors"] if s["pid"]]
                kind, pid = rng.choice([t for t in targets if t[1]])
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills[kind] += 1
                except ProcessLookupError:
                    pass
            tree.wait_running(*names, timeout=30)
            restarts = sum(s["restarts"] for s in tree.state()["sensors"])
            listener_restarts = tree.state()["listener"]["restarts"]
            tree.signal(signal.SIGTERM)
            status = tree.wait_exit(60)
            lost = 0
            for name in names:
                values = [r["value"] for r in tree.readings(name)]
                lost += sum(lost_in(run) for run in incarnations(values))
            print(f"start method {args.start_method}, {args.minutes:g} min: "
                  f"kills {kills['worker']} workers + {kills['listener']} listener; "
                  f"restarts {restarts} workers + {listener_restarts} listener; "
                  f"records lost {lost}; exit status {status}; leftovers {len(tree.leftovers())}")
        finally:
            tree.close()


if __name__ == "__main__":
    main()

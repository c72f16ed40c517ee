"""The sensor's own cost of one log call: edgesense's root QueueHandler (render,
encode, send) against a plain FileHandler writing the same line itself.

Only this process is measured; edgesense's listener runs in a spawned
process (so ``valgrind --tool=callgrind``, which does not follow exec,
counts the sensor alone). Prints CPU seconds of this process per call.
For instruction counts that a loaded machine does not change, run it under
callgrind twice, with ``--calls 0`` and ``--calls N``, and divide the
difference of the totals by N (the start-up cancels out):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/sensor_call_cost.py --path edgesense --calls 20000
"""

import argparse
import logging
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logging_setup import LogSettings, LogTransport, configure_process, run_listener  # noqa: E402
from logging_setup.formats import LOG_FORMAT  # noqa: E402
from logging_bench import use_only  # noqa: E402  (bench/ is on the path as the script's folder)


def plain(directory):
    handler = logging.FileHandler(directory / "plain.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    use_only(handler)
    return handler.close


def edgesense(directory):
    transport = LogTransport.create()
    settings = LogSettings(dir=directory / "logs", max_total_bytes=256 * 1024 * 1024, console=False)
    listener = multiprocessing.get_context("spawn").Process(target=run_listener,
                                                            args=(transport.receiver, settings))
    listener.start()
    configure_process(transport.sender)

    def finish():
        transport.sender.send_stop()
        listener.join()
        transport.close()
    return finish


PATHS = {"plain": plain, "edgesense": edgesense}


def cost_per_call(path, calls):
    """CPU seconds of this process per log call (the warm-up call excluded)."""
    with tempfile.TemporaryDirectory() as scratch:
        finish = PATHS[path](Path(scratch))
        log = logging.getLogger("sensors.system")
        log.info("warm-up %d", 0)
        started = time.process_time()
        for number in range(calls):
            log.info("cpu temperature %.1f C, reading %d", 48.25, number)
        spent = time.process_time() - started
        finish()
    return spent / calls if calls else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", choices=sorted(PATHS), default="edgesense")
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    print(f"{args.path}: {cost_per_call(args.path, args.calls) * 1e6:.2f} us CPU per call ({args.calls} calls)")


if __name__ == "__main__":
    main()

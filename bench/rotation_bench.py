"""Rotation benchmark: does a rotation cost more when many rotated files exist?

The real listener writes ``--records`` records from one writer process into
a folder that already holds 10 rotated files, then one that holds 3,000,
with small live files (``--file-bytes``) so that it rotates every hundred
records or so. Runs alternate between the two folders (the machine may be
busy with other work); the best and median throughput of each are printed,
and the ratio of the bests (target: at least 0.8). Run from the repository
root:

    python bench/rotation_bench.py [--records 40000] [--repeat 3] [--compress]
"""

import argparse
import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logging_setup import LogSettings, LogTransport, configure_process, run_listener  # noqa: E402
from logging_setup.folder import FILE_MODE  # noqa: E402
from logging_setup.names import LOG_FILE_NAME, rotated_name  # noqa: E402

HISTORIES = (10, 3000)
CTX = multiprocessing.get_context("fork")


def plant_history(directory, count):
    """``count`` small rotated files, as an earlier run would have left."""
    directory.mkdir(mode=0o750)
    for index in range(1, count + 1):
        path = directory / rotated_name(LOG_FILE_NAME, index)
        path.write_bytes(b"an old line of the edgesense log\n")
        path.chmod(FILE_MODE)


def writer(sender, count):
    configure_process(sender)
    log = logging.getLogger("bench.rotation")
    for number in range(count):
        log.info("sensor=bench value=%d unit=C a record of about a hundred bytes", number)


def throughput(directory, records, file_bytes, compress):
    """Records per second from the first log call until the listener has
    written the last one and exited."""
    settings = LogSettings(dir=directory, max_file_bytes=file_bytes, max_total_bytes=1 << 30,
                           compress=compress, console=False)
    with LogTransport.create() as transport:
        listener = CTX.Process(target=run_listener, args=(transport.receiver, settings))
        listener.start()
        while not (directory / LOG_FILE_NAME).exists():
            time.sleep(0.01)
        started = time.monotonic()
        process = CTX.Process(target=writer, args=(transport.sender, records))
        process.start()
        process.join()
        transport.sender.send_stop()
        listener.join()
        return records / (time.monotonic() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--file-bytes", type=int, default=16 * 1024)
    parser.add_argument("--compress", action="store_true", help="gzip rotated files (off: rotation alone)")
    args = parser.parse_args()
    rates = {count: [] for count in HISTORIES}
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.repeat):
            for count in HISTORIES:
                directory = Path(scratch) / f"history-{count}-{run}"
                plant_history(directory, count)
                rates[count].append(throughput(directory, args.records, args.file_bytes, args.compress))
    for count in HISTORIES:
        print(f"{count:>5} rotated files present: best {max(rates[count]):>8,.0f} records/s, "
              f"median {statistics.median(rates[count]):>8,.0f}")
    ratio = max(rates[HISTORIES[1]]) / max(rates[HISTORIES[0]])
    print(f"ratio {HISTORIES[1]} / {HISTORIES[0]}: {ratio:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()

"""The listener's own cost of one record: decoding a datagram, formatting its
line (and its reading's JSON line), and appending both to their files, with
one write per file per batch of ``BATCH`` records as in a busy listener.

Runs the listener's handlers in this process over one datagram sent by a
sensor (a reading of the system sensor), so no socket or other process is
timed. ``--journal`` adds the console as systemd gives it (the journal's
format; this process's stderr, so send it to /dev/null). Prints CPU seconds per record. For instruction counts that a loaded
machine does not change, run it under callgrind with ``--records 0`` and
``--records N`` and divide the difference of the totals by N:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/listener_record_cost.py --records 20000
"""

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logging_setup import LogSettings  # noqa: E402
from logging_setup.formats import JournalFormatter  # noqa: E402
from logging_setup.listener import _dispatch, _install_handlers, _remove_handlers  # noqa: E402
from logging_setup.transport import encode_record  # noqa: E402

BATCH = 50


def sensor_datagram():
    """What a system sensor sends for one reading."""
    record = logging.LogRecord("sensors.system", logging.INFO, "/opt/edgesense/sensors/system.py", 40,
                               "reading sensor=%s value=%.1f unit=%s", ("cpu", 48.25, "C"), None)
    record.processName = "sensor:cpu"
    record.reading = {"sensor": "cpu", "value": 48.25, "unit": "C", "time": "2026-12-01T10:00:00+00:00"}
    return encode_record(record)


def cost_per_record(records, journal=False):
    """CPU seconds of this process per record handled."""
    with tempfile.TemporaryDirectory() as scratch:
        settings = LogSettings(dir=Path(scratch), max_file_bytes=1024 * 1024 * 1024,
                               max_total_bytes=4 * 1024 * 1024 * 1024, compress=False, console=journal)
        directory, handlers = _install_handlers(settings)
        if journal:
            handlers[-1].setFormatter(JournalFormatter())
        datagram = memoryview(sensor_datagram())
        started = time.process_time()
        for number in range(records):
            _dispatch(datagram, handlers)
            if number % BATCH == BATCH - 1:
                for handler in handlers:
                    handler.flush()
        spent = time.process_time() - started
        _remove_handlers(handlers)
        directory.close()
    return spent / records if records else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--journal", action="store_true", help="the console on, in the journal's format")
    args = parser.parse_args()
    cost = cost_per_record(args.records, args.journal)
    print(f"listener: {cost * 1e6:.2f} us CPU per record ({args.records} records)")


if __name__ == "__main__":
    main()

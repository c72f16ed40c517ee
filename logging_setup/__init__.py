"""Process-safe logging: one listener process owns every file, every other
process sends its records to it through one QueueHandler on its root logger.

Imports only the standard library.
"""

from logging_setup.listener import LogSettings, run_listener
from logging_setup.process import configure_process
from logging_setup.transport import LogSender, LogTransport

READING_ATTR = "reading"
"""A record that carries ``extra={"reading": {...}}`` is a reading: the
listener also writes that dict as one JSON line to ``readings.jsonl``."""

__all__ = [
    "READING_ATTR",
    "LogSender",
    "LogSettings",
    "LogTransport",
    "configure_process",
    "run_listener",
]

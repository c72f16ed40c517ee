"""Process-safe logging: one listener process owns every file, every other
process sends its records to it through one QueueHandler on its root logger.

Imports only the standard library.
"""

from logging_setup.formats import READING_ATTR
from logging_setup.listener import LogSettings, run_listener
from logging_setup.process import configure_process
from logging_setup.transport import LogSender, LogTransport

__all__ = [
    "READING_ATTR",
    "LogSender",
    "LogSettings",
    "LogTransport",
    "configure_process",
    "run_listener",
]

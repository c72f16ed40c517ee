"""The log listener process: the only owner of log files (DESIGN.md L1, L3, L7-L9)."""

import errno
import logging
import logging.handlers
import multiprocessing
import select
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from logging_setup.directory import LogDirectory
from logging_setup.handlers import ConsoleHandler, LogFileHandler, ReadingsHandler
from logging_setup.names import LOG_FILE_NAME, READINGS_FILE_NAME
from logging_setup.signals import ignore_tree_signals
from logging_setup.formats import console_formatter
from logging_setup.transport import MAX_DATAGRAM_BYTES, STOP_SENTINEL, decode_record

log = logging.getLogger(__name__)

CANNOT_OPEN_FOLDER = 2
"""The listener's exit status when the log folder cannot be created or opened."""


@dataclass(frozen=True)
class LogSettings:
    """What the listener writes and where. Sizes in bytes.

    ``reserved_file`` names a file of ``dir`` that another process writes
    (the supervisor's state file): the budget keeps ``reserved_bytes`` for
    it, whether it exists yet or not."""

    dir: Path
    level: str = "INFO"
    max_file_bytes: int = 256 * 1024
    max_total_bytes: int = 4 * 1024 * 1024
    compress: bool = True
    console: bool = True
    reserved_file: str | None = None
    reserved_bytes: int = 0


def run_listener(receiver, settings):
    """Process target: write every record from ``receiver`` to the files (and
    the console) until the stop sentinel, then flush and close.

    Everything sent before the sentinel is written; records sent after it stay
    in the socket for the next listener. SIGINT, SIGTERM and SIGHUP are
    ignored (the supervisor orders stops and reloads); when the parent
    process dies the listener writes what is queued and returns, so it never
    lives on as an orphan. A folder it cannot create or open, or in which
    neither live file can be opened (a foreign entry under both names), is
    one line on stderr and exit status ``CANNOT_OPEN_FOLDER``; one live file
    that cannot be opened is reported and stepped around (L10).
    """
    ignore_tree_signals()
    try:
        directory, handlers = _install_handlers(settings)
    except OSError as error:
        print(f"edgesense: cannot use the log folder {settings.dir}: {error.strerror or error}",
              file=sys.stderr, flush=True)
        raise SystemExit(CANNOT_OPEN_FOLDER) from None
    log.info("log listener started, writing to %s", settings.dir)
    try:
        _serve(receiver, handlers)
    finally:
        _remove_handlers(handlers)
        directory.close()  # finishes the compressions under way


def _install_handlers(settings):
    """Replace whatever the process inherited with the output handlers;
    return their LogDirectory (which compresses in a thread of its own) and
    them. No QueueHandler stays reachable, so the listener never sends a
    record back into the transport (the article's infinite loop)."""
    _remove_inherited_handlers()
    directory = LogDirectory(settings.dir, settings.max_file_bytes, settings.max_total_bytes, settings.compress,
                             reserved=(settings.reserved_file, settings.reserved_bytes), background=True)
    lives = [directory.open_live(LOG_FILE_NAME), directory.open_live(READINGS_FILE_NAME)]
    if not any(live.is_open for live in lives):
        raise OSError(errno.EEXIST, "; ".join(str(live.open_error) for live in lives))
    handlers = [LogFileHandler(lives[0]), ReadingsHandler(lives[1])]
    if settings.console:
        console = ConsoleHandler(sys.stderr)
        console.setFormatter(console_formatter(sys.stderr))
        handlers.append(console)
    root = logging.getLogger()
    for handler in handlers:
        if not isinstance(handler, ReadingsHandler):  # a reading that arrives is always kept
            handler.setLevel(settings.level)
        root.addHandler(handler)
    root.setLevel(settings.level)
    return directory, handlers


def _remove_inherited_handlers():
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        for handler in list(getattr(logger, "handlers", ())):
            if isinstance(handler, logging.handlers.QueueHandler):
                logger.removeHandler(handler)


def _remove_handlers(handlers):
    root = logging.getLogger()
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()


def _serve(receiver, handlers):
    """Block until datagrams arrive, write them in batches; return after the
    stop sentinel or, once the parent is gone, after the queue is empty.

    After each flush the socket is looked at again before blocking: records
    that arrived meanwhile are taken without a wake-up, which costs the
    sender more than the send itself (measured in bench/logging_bench.py).
    Whether a second datagram is queued is asked with ``poll(0)``: a batch
    of one, the common one, then ends without a failing ``recv``, whose
    exception costs more than the record."""
    parent = multiprocessing.parent_process()
    waiting = select.poll()
    waiting.register(receiver, select.POLLIN)
    if parent is not None:
        waiting.register(parent.sentinel, select.POLLIN)
    queued = select.poll()
    queued.register(receiver, select.POLLIN)
    buffer = bytearray(MAX_DATAGRAM_BYTES + 1)
    receiver_fd = receiver.fileno()
    _flush(handlers)  # the listener's own first line
    while True:
        ready = {fd for fd, _ in waiting.poll()}
        parent_gone = bool(ready - {receiver_fd})
        stopped = False
        records_queued = receiver_fd in ready or parent_gone
        while records_queued and not stopped:
            received, stopped = _write_queued(receiver, queued, buffer, handlers)
            _flush(handlers)
            records_queued = received and queued.poll(0)
        if stopped or parent_gone:
            return


def _flush(handlers):
    for handler in handlers:
        handler.flush()


def _write_queued(receiver, queued, buffer, handlers):
    """Hand every queued record to the handlers. Returns how many datagrams
    were read, and whether the last was the stop sentinel."""
    view = memoryview(buffer)
    received = 0
    while True:
        try:
            size = receiver.recv_into(buffer, 0, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return received, False
        received += 1
        datagram = view[:size]
        if datagram == STOP_SENTINEL:
            return received, True
        _dispatch(datagram, handlers)
        if received == 1 and not queued.poll(0):
            return received, False


def _dispatch(datagram, handlers):
    try:
        record = decode_record(datagram)
        level = int(record.levelno)
    except Exception as error:
        log.warning("dropped an undecodable log datagram of %d bytes: %r", len(datagram), error)
        return
    for handler in handlers:
        if level >= handler.level:
            # emit, not handle: this loop is the listener's only thread and
            # its handlers carry no filters, so handle's lock is pure cost.
            handler.emit(record)

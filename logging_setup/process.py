"""Per-process logging configuration (DESIGN.md L1, L2)."""

import logging
import logging.handlers

from logging_setup.formats import RenderingFormatter
from logging_setup.transport import pack_record


class RenderedQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler whose ``emit`` packs the record for the datagram
    (``transport.pack_record``: message merged with its arguments, traceback
    as text) and sends that, instead of ``prepare`` copying it into a new
    LogRecord that would only be taken apart again. ``flush`` (called by
    ``logging.shutdown()``) sends the sender's count of dropped records."""

    def __init__(self, queue):
        super().__init__(queue)
        self.setFormatter(RenderingFormatter())

    def emit(self, record):
        try:
            self.queue.put_packed(pack_record(record, self.formatter))
        except Exception:
            self.handleError(record)

    def flush(self):
        """Let the sender report records it dropped (``LogSender.flush``)."""
        flush = getattr(self.queue, "flush", None)
        if flush is not None:
            flush()


def configure_process(sender, level="INFO"):
    """Remove every root handler this process inherited and install exactly
    one QueueHandler that sends through ``sender``. Safe to call twice and
    after fork. Every non-listener process calls it first.

    Inherited handlers are removed, not closed: after fork they may share
    file descriptors with the parent, which still uses them.

    >>> from logging_setup import LogTransport
    >>> transport = LogTransport.create()
    >>> configure_process(transport.sender, "DEBUG")
    >>> [type(h).__name__ for h in logging.getLogger().handlers]
    ['RenderedQueueHandler']
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RenderedQueueHandler(sender))
    root.setLevel(level)

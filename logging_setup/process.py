"""Per-process logging configuration (DESIGN.md L1, L2)."""

import logging
import logging.handlers

from logging_setup.formats import RenderingFormatter


class RenderedQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler whose ``prepare`` renders the record into a new one
    instead of copying it with ``copy.copy``: the same result (message merged
    with its arguments, traceback as text, no args, exc_info or stack_info) at a
    sixth of the cost, measured in bench/logging_bench.py. ``flush`` (called
    by ``logging.shutdown()``) sends the sender's count of dropped records."""

    def __init__(self, queue):
        super().__init__(queue)
        self.setFormatter(RenderingFormatter())

    def prepare(self, record):
        attributes = dict(record.__dict__)
        attributes.update(msg=self.formatter.message(record), args=None, exc_info=None,
                          exc_text=self.formatter.traceback(record), stack_info=None)
        attributes.pop("message", None)
        prepared = logging.LogRecord.__new__(logging.LogRecord)
        prepared.__dict__ = attributes
        return prepared

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

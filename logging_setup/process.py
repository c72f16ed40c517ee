"""Per-process logging configuration (DESIGN.md L1, L2)."""

import logging
import logging.handlers

from logging_setup.formats import RenderingFormatter


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
    ['QueueHandler']
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.handlers.QueueHandler(sender)
    handler.setFormatter(RenderingFormatter())
    root.addHandler(handler)
    root.setLevel(level)

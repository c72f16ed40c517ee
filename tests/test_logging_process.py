"""configure_process: exactly one QueueHandler on the root, whatever came before (L1)."""

import logging
import logging.handlers

import pytest

from logging_setup import LogTransport, configure_process


@pytest.fixture
def root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_replaces_inherited_handlers_with_one_queue_handler(root):
    with LogTransport.create() as transport:
        inherited = logging.StreamHandler()
        root.addHandler(inherited)
        configure_process(transport.sender, "DEBUG")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0], logging.handlers.QueueHandler)
        assert root.handlers[0].queue is transport.sender
        assert root.level == logging.DEBUG


def test_configuring_twice_keeps_one_handler(root):
    with LogTransport.create() as transport:
        configure_process(transport.sender)
        configure_process(transport.sender, "WARNING")
        assert len(root.handlers) == 1
        assert root.level == logging.WARNING

"""The datagram transport: what a record becomes on the way (L6) and what a
sender does when the listener does not drain (L5)."""

import logging
import socket
import threading
import time

import pytest

from logging_setup.process import RenderedQueueHandler
from logging_setup.transport import MAX_DATAGRAM_BYTES, SEND_WAIT_SECONDS, LogTransport, decode_record


@pytest.fixture
def transport():
    with LogTransport.create() as transport:
        yield transport


@pytest.fixture
def log(transport):
    """A logger whose only handler sends through the transport, as a
    configured process's root logger does."""
    logger = logging.getLogger("tests.transport")
    handler = RenderedQueueHandler(transport.sender)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.removeHandler(handler)


def received(transport):
    """Every record waiting in the receiver, in order."""
    records = []
    while True:
        try:
            records.append(decode_record(transport.receiver.recv(MAX_DATAGRAM_BYTES + 1, socket.MSG_DONTWAIT)))
        except BlockingIOError:
            return records


class Unpicklable:
    def __init__(self):
        self.lock = threading.Lock()

    def __repr__(self):
        return "<Unpicklable>"

    __str__ = __repr__


def test_a_line_s_attributes_and_the_extras_travel_and_the_rest_stays_home(transport, log):
    before = time.time()
    log.warning("door %s", "open", extra={"reading": {"value": 1}, "room": "shed"})
    [record] = received(transport)
    assert (record.name, record.levelno, record.levelname) == ("tests.transport", logging.WARNING, "WARNING")
    assert before <= record.created <= time.time()
    assert record.msecs == int((record.created - int(record.created)) * 1000)
    assert record.processName == "MainProcess"
    assert (record.getMessage(), record.reading, record.room) == ("door open", {"value": 1}, "shed")
    assert [record.pathname, record.lineno, record.funcName, record.thread, record.process] == [None] * 5


def test_arguments_are_merged_before_sending(transport, log):
    log.info("%s read %.1f %s", "sensor:t", 21.456, Unpicklable())
    [record] = received(transport)
    assert record.getMessage() == "sensor:t read 21.5 <Unpicklable>"
    assert record.args is None


def test_unpicklable_extra_arrives_as_its_repr(transport, log):
    log.info("with extra", extra={"device": Unpicklable(), "reading": {"value": 1.5}})
    [record] = received(transport)
    assert record.device == "<Unpicklable>"
    assert record.reading == {"value": 1.5}


def test_unpicklable_value_inside_a_reading_arrives_as_its_repr(transport, log):
    log.info("reading", extra={"reading": {"value": 2, "raw": Unpicklable()}})
    [record] = received(transport)
    assert record.reading == {"value": 2, "raw": "<Unpicklable>"}


def test_arguments_that_do_not_merge_still_arrive(transport, log):
    log.info("%d items", "three")
    [record] = received(transport)
    assert record.getMessage().startswith("'%d items' % ('three',) (arguments did not merge: TypeError(")


def test_traceback_travels_as_text(transport, log):
    try:
        raise ValueError("bad wiring")
    except ValueError:
        log.exception("read failed")
    [record] = received(transport)
    assert record.exc_info is None
    assert record.getMessage() == "read failed"
    assert record.exc_text.startswith("Traceback (most recent call last):\n")
    assert record.exc_text.endswith("ValueError: bad wiring")


def test_one_megabyte_message_arrives_truncated_with_marker(transport, log):
    log.info("x" * 1_000_000)
    [record] = received(transport)
    message = record.getMessage()
    kept = len(message) - len(message.lstrip("x"))
    assert message == "x" * kept + f"... [truncated {1_000_000 - kept} bytes]"
    assert kept > 40_000


def test_burst_without_listener_returns_promptly_and_drops_are_reported(transport, log):
    started = time.monotonic()
    for number in range(10_000):
        log.info("burst %d", number)
    assert time.monotonic() - started < SEND_WAIT_SECONDS + 3.0

    queued = received(transport)
    log.info("after the listener drained")
    after = received(transport)

    assert [r.getMessage() for r in queued] == [f"burst {n}" for n in range(len(queued))]
    assert after[0].getMessage() == "after the listener drained"
    assert after[1].levelno == logging.WARNING
    assert after[1].getMessage() == (
        f"{10_000 - len(queued)} log records dropped: the log listener did not drain in time")
    assert len(after) == 2


def test_send_never_raises_when_the_receiver_is_gone(transport, log):
    transport.receiver.close()
    log.error("nobody listens")
    log.error("still nobody")

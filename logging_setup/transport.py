"""Records travel as AF_UNIX datagrams, one per record (DESIGN.md L4-L6).

The two ends come from ``socket.socketpair``: the pair has no address, so only
processes that inherited the sending socket can write to the receiver. That is
why the listener may unpickle what it receives.

There is no lock shared between processes: a process killed in the middle of
a send leaves either a whole datagram or none, and the other processes' sends
go on.
"""

import logging
import operator
import os
import pickle
import select
import socket
import time
import weakref

from logging_setup.formats import RenderingFormatter, safe_repr

MAX_DATAGRAM_BYTES = 60 * 1024
"""Largest datagram a sender emits: well under the kernel's default send
buffer (212992 bytes), so a datagram this size is always accepted."""

MAX_MESSAGE_BYTES = 48 * 1024
"""A longer message is cut to this many bytes, with a visible marker."""

SEND_WAIT_SECONDS = 0.5
"""How long a send waits for the listener to make room before it gives up and
starts dropping (L5)."""

STOP_SENTINEL = b"\x00edgesense-stop"
"""The datagram that asks the listener to stop; never a valid pickle."""

_PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
_EXTRA_LIMITS = (1024, 64)
"""Bytes each oversized extra value is cut to, tried in turn until the
record fits in one datagram."""
_DROP_REPORTER = "logging_setup.transport"
RENDERER = RenderingFormatter()
"""Renders the message and traceback of every record a process sends."""


class LogSender:
    """The queue object of every process's root QueueHandler.

    Picklable under fork, forkserver and spawn: pass it to every child as a
    Process argument (multiprocessing duplicates the socket into the child).
    ``put_nowait(record)`` sends one datagram; it never raises and never waits
    longer than ``SEND_WAIT_SECONDS`` (L5). When the listener does not drain in
    time the record is dropped and counted; later sends do not wait until one
    goes through again, and that one is followed by a WARNING that says how
    many records were dropped.

    The socket is shared by every process (one open file description), so
    this class never changes its blocking mode: each send says MSG_DONTWAIT.

    >>> transport = LogTransport.create()
    >>> record = logging.makeLogRecord({"msg": "hello"})
    >>> transport.sender.put_nowait(record)
    >>> decode_record(transport.receiver.recv(MAX_DATAGRAM_BYTES)).getMessage()
    'hello'
    >>> transport.close()
    """

    def __init__(self, sock):
        self._socket = sock
        self._reset_drop_state()
        _SENDERS.add(self)

    def __reduce__(self):
        # Only the socket crosses into a child; drop counts belong to the
        # process that dropped.
        return (LogSender, (self._socket,))

    def put_nowait(self, record):
        """Send one record (``pack_record`` renders it on the way)."""
        self.put_packed(pack_record(record))

    def put_packed(self, packed):
        """Send one record already packed by ``pack_record``. The first send
        is tried here: there is room in the queue nearly every time."""
        try:
            data = encode_packed(packed)
        except Exception:
            self._dropped_records += 1
            return
        try:
            self._socket.send(data, _SEND_FLAGS)
        except OSError:
            self._send_again(data)
            return
        if self._dropped_records:
            self._report_drops()

    def send_stop(self):
        """Ask the listener to stop once it has written everything sent before
        this. Waits up to ``SEND_WAIT_SECONDS`` for room even while records are
        being dropped; returns whether the sentinel was sent."""
        return self._send_waiting(STOP_SENTINEL)

    def close(self):
        """Close this process's handle of the sending socket."""
        self._socket.close()

    def _send_again(self, data):
        """After a first send found no room: wait for some, unless records
        are being dropped already (L5)."""
        if self._dropping or not self._send_waiting(data, tried=True):
            self._dropping = True
            self._dropped_records += 1
        elif self._dropped_records:
            self._report_drops()

    def _send_waiting(self, data, tried=False):
        if not tried and self._try_once(data):
            return True
        deadline = time.monotonic() + SEND_WAIT_SECONDS
        while True:
            try:
                self._socket.send(data, _SEND_FLAGS)
                return True
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait_writable(remaining):
                    return False
            except OSError:
                return False

    def _try_once(self, data):
        try:
            self._socket.send(data, _SEND_FLAGS)
            return True
        except OSError:
            return False

    def _wait_writable(self, timeout):
        poller = select.poll()
        poller.register(self._socket, select.POLLOUT)
        return bool(poller.poll(timeout * 1000))

    def flush(self):
        """Send the count of dropped records now, waiting up to
        ``SEND_WAIT_SECONDS`` for room. The root handler's ``flush`` calls
        this, so ``logging.shutdown()`` at a clean exit reports drops that no
        later record would have carried."""
        if self._dropped_records:
            self._report_drops(wait=True)

    def _report_drops(self, wait=False):
        count, self._dropped_records = self._dropped_records, 0
        self._dropping = False
        record = logging.LogRecord(
            _DROP_REPORTER, logging.WARNING, __file__, 0,
            "%d log records dropped: the log listener did not drain in time", (count,), None,
        )
        record.msg, record.args = record.getMessage(), None
        data = encode_packed(pack_record(record))
        if not (self._send_waiting(data) if wait else self._try_once(data)):
            self._dropping = True
            self._dropped_records += count

    def _reset_drop_state(self):
        self._dropping = False
        self._dropped_records = 0


_SENDERS = weakref.WeakSet()


def _forget_drops_of_parent():
    # After fork the child holds a copy of the parent's counters: they
    # describe the parent's drops, which the parent reports itself.
    for sender in list(_SENDERS):
        sender._reset_drop_state()


os.register_at_fork(after_in_child=_forget_drops_of_parent)


class LogTransport:
    """The receiving socket (kept by the supervisor, handed to each listener
    incarnation) and the sender every other process uses.

    Records waiting in the receiver's kernel queue outlive a listener that
    dies: the next listener on the same receiver writes them.
    """

    def __init__(self, receiver, sender):
        self._receiver = receiver
        self._sender = LogSender(sender)

    @classmethod
    def create(cls):
        receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        return cls(receiver, sender)

    @property
    def sender(self):
        return self._sender

    @property
    def receiver(self):
        return self._receiver

    def close(self):
        """Close both sockets in this process. Idempotent."""
        self._sender.close()
        self._receiver.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def pack_record(record, renderer=RENDERER):
    """What travels of ``record``: its message merged with its arguments and
    its traceback as text (L6), without copying the record.

    A tuple: the standard attributes a line is made of, in
    ``LINE_ATTRIBUTES`` order, then the message, the traceback text, and a
    dict of the extras or None. The other standard attributes (the caller's
    file and line, the thread, the pid) reach no line, so they stay home.
    """
    state = record.__dict__
    try:
        values = _line_values(state)
    except KeyError:
        values = tuple(state.get(name) for name in LINE_ATTRIBUTES)
    extras = None
    if len(state) > len(RECORD_ATTRIBUTES) + ("message" in state):
        extras = {name: state[name] for name in state.keys() - _NOT_EXTRA}
    try:
        message = record.getMessage()
    except Exception:
        message = renderer.message(record)
    traceback = None
    if record.exc_info or record.exc_text or record.stack_info:
        traceback = renderer.traceback(record)
    return values, message, traceback, extras


def encode_packed(packed):
    """One datagram for a ``pack_record`` tuple. A value that cannot be
    pickled travels as its repr; a datagram that would be too large has its
    message truncated with a visible marker (L6)."""
    try:
        data = pickle.dumps(packed, _PICKLE_PROTOCOL)
    except Exception:
        packed = _picklable(packed)
        data = pickle.dumps(packed, _PICKLE_PROTOCOL)
    if len(data) > MAX_DATAGRAM_BYTES:
        data = pickle.dumps(_shrunk(packed), _PICKLE_PROTOCOL)
    return data


def encode_record(record):
    """One datagram for ``record`` (``pack_record``, then ``encode_packed``)."""
    return encode_packed(pack_record(record))


def decode_record(data):
    """The LogRecord in a datagram made by ``encode_packed``.

    The record is rebuilt around the received attributes without running
    LogRecord.__init__, which would look up this process's time, pid and
    thread only to have them overwritten."""
    values, message, exc_text, extras = pickle.loads(data)
    name, levelno, levelname, created, msecs, process_name = values
    attributes = {"name": name, "levelno": levelno, "levelname": levelname, "created": created,
                  "msecs": msecs, "processName": process_name, "msg": message, "exc_text": exc_text}
    if extras:
        attributes.update(extras)
    record = ReceivedRecord.__new__(ReceivedRecord)
    record.__dict__ = attributes
    return record


class ReceivedRecord(logging.LogRecord):
    """A record rebuilt from a datagram. What the sender rendered away (the
    arguments, exc_info, stack_info) and the standard attributes that do not
    travel are None for every one of them, so they are said here once
    rather than stored in each record."""

    args = exc_info = stack_info = None
    pathname = filename = module = lineno = funcName = relativeCreated = None
    thread = threadName = process = taskName = None


RECORD_ATTRIBUTES = tuple(name for name in logging.makeLogRecord({}).__dict__ if name != "message")
LINE_ATTRIBUTES = ("name", "levelno", "levelname", "created", "msecs", "processName")
"""The standard attributes that travel: what the listener's lines and
level checks are made of (``decode_record`` unpacks them in this order)."""
_NOT_EXTRA = frozenset(RECORD_ATTRIBUTES) | {"message"}
_line_values = operator.itemgetter(*LINE_ATTRIBUTES)


def _picklable(packed):
    values, message, exc_text, extras = packed
    values = tuple(_picklable_value(value) for value in values)
    if extras:
        extras = {key: _picklable_value(value) for key, value in extras.items()}
    return values, message, exc_text, extras


def _picklable_value(value):
    try:
        pickle.dumps(value, _PICKLE_PROTOCOL)
        return value
    except Exception:
        if isinstance(value, dict):
            return {str(key): _picklable_value(item) for key, item in value.items()}
        return safe_repr(value)


def _shrunk(packed):
    """``packed`` with its message and traceback truncated and, while the
    datagram would still be too large, each oversized extra cut down to a
    limit. A dict (a reading) keeps its keys and small values; only its
    oversized values are truncated with a marker, so the reading still
    reaches its file."""
    values, message, exc_text, extras = packed
    message = truncate_text(str(message), MAX_MESSAGE_BYTES)
    if exc_text:
        exc_text = truncate_text(str(exc_text), MAX_MESSAGE_BYTES)
    extras = extras or {}
    shrunk = dict(extras)
    for limit in _EXTRA_LIMITS:
        if _fits((values, message, exc_text, shrunk)):
            return values, message, exc_text, shrunk
        shrunk = {key: _shrunk_value(value, limit) for key, value in extras.items()}
    if not _fits((values, message, exc_text, shrunk)):
        shrunk = {key: truncate_text(safe_repr(value), _EXTRA_LIMITS[-1]) for key, value in extras.items()}
    return values, message, exc_text, shrunk


def _fits(packed):
    return len(pickle.dumps(packed, _PICKLE_PROTOCOL)) <= MAX_DATAGRAM_BYTES


def _shrunk_value(value, limit):
    if isinstance(value, dict):
        return {key: _shrunk_value(item, limit) for key, item in value.items()}
    if isinstance(value, str):
        return truncate_text(value, limit)
    if value is None or isinstance(value, (bool, float)):
        return value
    if len(pickle.dumps(value, _PICKLE_PROTOCOL)) <= limit:
        return value
    return truncate_text(safe_repr(value), limit)


def truncate_text(text, max_bytes):
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, plus a marker that
    says how many bytes were cut."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return text
    kept = encoded[:max_bytes].decode("utf-8", "ignore")
    return f"{kept}... [truncated {len(encoded) - len(kept.encode())} bytes]"

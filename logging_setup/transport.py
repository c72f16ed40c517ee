"""Records travel as AF_UNIX datagrams, one per record (DESIGN.md L4-L6)."""


class LogSender:
    """The queue object of every process's root QueueHandler.

    Picklable under fork, forkserver and spawn: pass it to every child.
    ``put_nowait(record)`` sends one datagram; it never raises and never
    waits long (L5). ``send_stop()`` sends the listener's stop sentinel.
    """

    def put_nowait(self, record):
        raise NotImplementedError

    def send_stop(self):
        raise NotImplementedError


class LogTransport:
    """The receiving socket (kept by the supervisor, handed to each listener
    incarnation) and the sender every other process uses."""

    @classmethod
    def create(cls):
        raise NotImplementedError

    @property
    def sender(self):
        raise NotImplementedError

    @property
    def receiver(self):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

"""Compression of rotated files away from the record path (L7).

A job reads one rotated file and writes its compressed copy into a
temporary file the directory created for it, then fsyncs it; everything
else (the rename to the final name, deleting the plain file, the budget's
accounting) stays with the directory, in the listener's own thread. zlib
releases the GIL while it compresses, so the listener goes on writing
records meanwhile.
"""

import os
import queue
import threading

COMPRESSION_NICENESS = 10
"""How much lower than the listener's own the compression thread's priority
is: a gzip waits for idle CPU rather than delaying a record or a reading."""


class CompressionJob:
    """Compress one rotated file into a temporary file the directory
    created for it. ``bound`` is the room the budget keeps for the
    temporary file from the job's creation until it is finished; the files
    are opened later (``attach``), and both descriptors are closed by
    ``run``."""

    def __init__(self, rotated, bound):
        self.rotated = rotated
        self.bound = bound
        self.temp = None
        self.error = None
        self.info = None
        self.done = threading.Event()
        self._source = None
        self._fd = None

    def attach(self, temp, source, fd):
        """The rotated file open as ``source``, the temporary file ``temp`` as ``fd``."""
        self.temp = temp
        self._source = source
        self._fd = fd

    def run(self, compressor):
        try:
            with os.fdopen(self._source, "rb") as plain, os.fdopen(self._fd, "wb") as packed:
                compressor(plain, packed)
                packed.flush()
                os.fsync(packed.fileno())  # the archive survives a power cut before the plain file goes
                self.info = os.fstat(packed.fileno())
        except Exception as error:
            self.error = error
        finally:
            self.done.set()


class BackgroundCompressor:
    """One thread that runs compression jobs in the order they come,
    started at the first job."""

    def __init__(self, compressor):
        self._compressor = compressor
        self._jobs = queue.SimpleQueue()
        self._thread = None

    def submit(self, job):
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="log-compressor", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def _work(self):
        _yield_to_the_record_path()
        while (job := self._jobs.get()) is not None:
            job.run(self._compressor)

    def close(self):
        """Finish the jobs submitted and stop the thread. Idempotent."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None


def _yield_to_the_record_path():
    """Lower this thread's CPU priority (Linux gives each thread its own
    nice value). Raising one's nice value needs no privilege."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0)
                       + COMPRESSION_NICENESS)
    except OSError:
        pass

"""A full disk (L7): the listener keeps draining, writers are not stalled,
writing resumes by itself when space returns, and the failure is reported
once per episode, not per record."""

import gzip
import logging
import os
import re
import resource
import sys
import time

from helpers import fill_disk, wait_for
from logging_setup import LogSettings, LogTransport, configure_process, run_listener
from logging_setup.directory import RESCAN_SECONDS

WAIT = 20.0


def listener_with_stderr(receiver, settings, stderr_path):
    """run_listener with its stderr in a file the test can read."""
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # under fork it may be pytest's capture
    run_listener(receiver, settings)


def timed_writer(sender, label, count, duration):
    configure_process(sender)
    log = logging.getLogger("tests.disk")
    started = time.monotonic()
    for number in range(count):
        log.info("%s record %d", label, number)
    duration.value = time.monotonic() - started


class Tree:
    """A listener with its stderr in a file, and writers on demand."""

    def __init__(self, ctx, transport, settings, stderr_path):
        self.ctx, self.transport, self.settings, self.stderr_path = ctx, transport, settings, stderr_path
        self.listener = ctx.Process(target=listener_with_stderr, args=(transport.receiver, settings, stderr_path),
                                    daemon=True)  # a failed test must not leave it running
        self.listener.start()
        wait_for(lambda: (settings.dir / "edgesense.log").exists(), WAIT, what="the listener")

    def write(self, label, count):
        """Log ``count`` records from a new process; returns how long it took."""
        duration = self.ctx.Value("d", -1.0)
        writer = self.ctx.Process(target=timed_writer, args=(self.transport.sender, label, count, duration))
        writer.start()
        writer.join(WAIT)
        assert writer.exitcode == 0
        return duration.value

    def stderr(self):
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def stop(self):
        assert self.transport.sender.send_stop()
        self.listener.join(WAIT)
        assert self.listener.exitcode == 0

    def logged(self, label):
        text = (self.settings.dir / "edgesense.log").read_text()
        return [line.split("INFO     ", 1)[1] for line in text.splitlines() if f" {label} record " in line]


def assert_one_episode_reported(tree, lost):
    log_path = tree.settings.dir / "edgesense.log"
    lines = tree.stderr().splitlines()
    assert [line for line in lines if line.startswith(f"edgesense: cannot write {log_path}:")] == [lines[0]]
    assert lines[1:] == [f"edgesense: writing {log_path} again; {lost} records were lost meanwhile"]


def test_full_tmpfs(mp_context, small_tmpfs, tmp_path):
    settings = LogSettings(dir=small_tmpfs, max_file_bytes=64 * 1024, max_total_bytes=1024 * 1024, console=False)
    with LogTransport.create() as transport:
        tree = Tree(mp_context, transport, settings, tmp_path / "stderr")
        assert tree.write("before", 50) < WAIT
        wait_for(lambda: len(tree.logged("before")) == 50, WAIT, what="the records before")
        fill_disk(small_tmpfs)
        assert tree.write("full", 300) < 5.0  # not stalled: the listener keeps draining
        wait_for(lambda: "cannot write" in tree.stderr(), WAIT, what="the report")
        os.unlink(small_tmpfs / "filler")
        tree.write("after", 50)
        tree.stop()

    assert tree.logged("before") == [f"before record {n}" for n in range(50)]
    assert tree.logged("after") == [f"after record {n}" for n in range(50)]
    assert_lost_in_one_run(tree, 300)


def assert_lost_in_one_run(tree, written):
    """The "full" records kept are in order, none twice; those lost are one
    run (the batches that met the full disk), reported as one episode with
    their exact count. Records still queued when space returns are written:
    a test cannot wait for the listener's last batch of the burst."""
    kept = [int(message.rsplit(" ", 1)[1]) for message in tree.logged("full")]
    lost = sorted(set(range(written)) - set(kept))
    assert kept == sorted(set(kept))
    assert lost and lost == list(range(lost[0], lost[0] + len(lost)))
    assert_one_episode_reported(tree, len(lost))


def test_file_size_limit(tmp_path):
    """The same episode with failures injected by RLIMIT_FSIZE on the
    listener (EFBIG instead of ENOSPC), for machines that cannot mount."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    settings = LogSettings(dir=tmp_path / "logs", max_file_bytes=64 * 1024, max_total_bytes=1024 * 1024, console=False)
    with LogTransport.create() as transport:
        tree = Tree(ctx, transport, settings, tmp_path / "stderr")
        tree.write("before", 50)
        wait_for(lambda: len(tree.logged("before")) == 50, WAIT, what="the records before")
        limit = (settings.dir / "edgesense.log").stat().st_size + 1000
        resource.prlimit(tree.listener.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        assert tree.write("full", 300) < 5.0
        wait_for(lambda: "cannot write" in tree.stderr(), WAIT, what="the report")
        resource.prlimit(tree.listener.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        tree.write("after", 50)
        tree.stop()

    assert tree.logged("before") == [f"before record {n}" for n in range(50)]
    assert tree.logged("after") == [f"after record {n}" for n in range(50)]
    assert_lost_in_one_run(tree, 300)


LOG_FILE_NAMES = re.compile(r"^edgesense\.log(\.[0-9]+(\.gz)?)?$")


def rotated_log_names(directory):
    """The rotated files of the log (not an archive still being written)."""
    return sorted(name for name in os.listdir(directory)
                  if name.startswith("edgesense.log.") and LOG_FILE_NAMES.match(name))


def logged_everywhere(directory, label):
    """The records labelled ``label`` in the live log and every rotated one."""
    lines = []
    for name in os.listdir(directory):
        if LOG_FILE_NAMES.match(name):
            opener = gzip.open if name.endswith(".gz") else open
            try:
                with opener(directory / name, "rt") as file:
                    lines.extend(line for line in file if f" {label} record " in line)
            except FileNotFoundError:  # compressed or deleted meanwhile: the next look counts it
                return []
    return sorted(line.split("INFO     ", 1)[1].rstrip("\n") for line in lines)


def test_a_foreign_file_over_the_budget_pauses_logging_until_it_goes(mp_context, tmp_path):
    settings = LogSettings(dir=tmp_path / "logs", max_file_bytes=16384, max_total_bytes=131072, console=False)
    with LogTransport.create() as transport:
        tree = Tree(mp_context, transport, settings, tmp_path / "stderr")
        tree.write("before", 1000)
        wait_for(lambda: len(logged_everywhere(settings.dir, "before")) == 1000, WAIT, what="the records before")
        history = rotated_log_names(settings.dir)
        (settings.dir / "core.dump").write_bytes(os.urandom(150_000))
        time.sleep(RESCAN_SECONDS)  # other files are counted at the next listing, at most this late
        tree.write("during", 600)
        wait_for(lambda: "does not fit" in tree.stderr(), WAIT, what="the report")
        assert len(rotated_log_names(settings.dir)) >= len(history) >= 4
        os.unlink(settings.dir / "core.dump")
        time.sleep(1.1)
        tree.write("after", 50)
        tree.stop()

    assert logged_everywhere(settings.dir, "after") == sorted(f"after record {n}" for n in range(50))
    first, second = tree.stderr().splitlines()
    assert first.endswith(f"budget of {settings.dir}: other files in it use 150000 bytes; "
                          "dropping lines until there is room")
    assert second.startswith(f"edgesense: room in the budget of {settings.dir} again; ")

"""Compression in a thread of its own (L7, L10, L11): records keep being
written while an archive is made, the budget holds meanwhile, and a
listener killed mid-compression leaves no torn archive under a final name."""

import base64
import gzip
import os
import random
import signal
import threading
import time

from helpers import disk_bytes, file_lines, numbered_lines
from logging_setup.compression import COMPRESSION_NICENESS
from logging_setup.directory import LogDirectory, gzip_file

WAIT = 20.0
STATE_FILE_RESERVE = 4096
RESERVED = ("edgesense.state.json", STATE_FILE_RESERVE)


def write(live, lines):
    for line in lines:
        assert live.append(line)
    live.flush()


def lines_oldest_first(folder, live_name):
    rotated = [name for name in os.listdir(folder) if name.startswith(live_name + ".")]
    rotated.sort(key=lambda name: int(name.split(".")[2]))
    lines = []
    for name in rotated + [live_name]:
        lines.extend(file_lines(folder / name))
    return lines


def test_lines_are_written_while_an_archive_is_being_compressed(tmp_path):
    release = threading.Event()
    started = threading.Event()

    def held_compressor(plain, packed):
        started.set()
        assert release.wait(WAIT)
        gzip_file(plain, packed)

    directory = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=100_000, compressor=held_compressor,
                             background=True)
    live = directory.open_live("edgesense.log")
    write(live, numbered_lines(21))  # the 21st line rotates the first 20 away
    assert started.wait(WAIT)
    write(live, numbered_lines(19, start=21))

    assert file_lines(tmp_path / "edgesense.log") == numbered_lines(40)[20:]
    assert file_lines(tmp_path / "edgesense.log.1") == numbered_lines(20)
    assert [name for name in os.listdir(tmp_path) if name.endswith(".gz")] == []
    release.set()
    directory.close()
    assert sorted(os.listdir(tmp_path)) == ["edgesense.log", "edgesense.log.1.gz"]
    assert lines_oldest_first(tmp_path, "edgesense.log") == numbered_lines(40)


def test_a_rotation_starts_its_compression_only_after_the_line_that_caused_it_is_written(tmp_path):
    order = []
    real_write = os.write

    def noted_write(fd, data):
        order.append("write")
        return real_write(fd, data)

    def noted_compressor(plain, packed):
        order.append("compress")
        gzip_file(plain, packed)

    directory = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=100_000, compressor=noted_compressor,
                             background=True)
    live = directory.open_live("edgesense.log")
    write(live, numbered_lines(20))
    assert live.append(numbered_lines(21)[20])  # rotates the first 20 away
    room_kept = directory.used_bytes() - live.size - os.path.getsize(tmp_path / "edgesense.log.1")
    assert room_kept > 20 * len(numbered_lines(1)[0])  # the archive's room is kept from the rotation on
    assert sorted(os.listdir(tmp_path)) == ["edgesense.log", "edgesense.log.1"]  # no job file yet
    os.write = noted_write
    try:
        live.flush()
    finally:
        os.write = real_write
    directory.close()

    assert order[:2] == ["write", "compress"]
    assert sorted(os.listdir(tmp_path)) == ["edgesense.log", "edgesense.log.1.gz"]
    assert lines_oldest_first(tmp_path, "edgesense.log") == numbered_lines(21)


def test_budget_holds_while_compressing_in_the_background(tmp_path):
    budget = 3 * 2000 + STATE_FILE_RESERVE
    peaks = []

    def compress_and_measure(plain, packed):
        gzip_file(plain, packed)
        peaks.append(disk_bytes(tmp_path))
        time.sleep(0.002)  # lines keep coming while the archive is not renamed yet

    directory = LogDirectory(tmp_path, max_file_bytes=2000, max_total_bytes=budget, compressor=compress_and_measure,
                             reserved=RESERVED, background=True)
    live = directory.open_live("edgesense.log")
    noise = random.Random(7)
    after_writes = []
    for _ in range(1000):
        write(live, [base64.b64encode(noise.randbytes(36)) + b"\n"])
        after_writes.append(disk_bytes(tmp_path))
    directory.close()
    assert len(peaks) > 10
    assert max(peaks + after_writes) + STATE_FILE_RESERVE <= budget
    assert disk_bytes(tmp_path) + STATE_FILE_RESERVE <= budget
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_the_oldest_file_still_being_compressed_is_deleted_only_after_its_archive(tmp_path):
    """A budget that must drop the file being compressed waits for its job,
    then deletes the archive: no stray archive outlives its accounting."""
    budget = 2 * 2000 + 500
    directory = LogDirectory(tmp_path, max_file_bytes=2000, max_total_bytes=budget,
                             compressor=lambda plain, packed: (time.sleep(0.05), gzip_file(plain, packed)),
                             background=True)
    live = directory.open_live("edgesense.log")
    noise = random.Random(3)
    for _ in range(300):
        write(live, [base64.b64encode(noise.randbytes(36)) + b"\n"])
        assert disk_bytes(tmp_path) <= budget
    directory.close()
    assert disk_bytes(tmp_path) <= budget
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def stalling_compressor(plain, packed):
    """Writes half an archive, says so with a marker file, then stalls."""
    data = gzip.compress(plain.read())
    packed.write(data[:len(data) // 2])
    packed.flush()
    open(os.environ["EDGESENSE_TEST_MARKER"], "w").close()
    time.sleep(60)


def listener_stalled_in_compression(folder, marker):
    os.environ["EDGESENSE_TEST_MARKER"] = str(marker)
    directory = LogDirectory(folder, max_file_bytes=1000, max_total_bytes=100_000, compressor=stalling_compressor,
                             background=True)
    live = directory.open_live("edgesense.log")
    write(live, numbered_lines(30))
    time.sleep(60)


def test_a_listener_killed_mid_compression_leaves_no_torn_archive(mp_context, tmp_path):
    folder, marker = tmp_path / "logs", tmp_path / "compressing"
    child = mp_context.Process(target=listener_stalled_in_compression, args=(folder, marker))
    child.start()
    deadline = time.monotonic() + WAIT
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join(WAIT)
    assert marker.exists()

    names = sorted(os.listdir(folder))
    assert names[:2] == ["edgesense.log", "edgesense.log.1"]
    assert len(names) == 3 and names[2].startswith("edgesense.log.1.gz.") and names[2].endswith(".tmp")
    LogDirectory(folder, max_file_bytes=1000, max_total_bytes=100_000).open_live("edgesense.log")
    assert sorted(os.listdir(folder)) == ["edgesense.log", "edgesense.log.1"]
    assert lines_oldest_first(folder, "edgesense.log") == numbered_lines(30)


def nice_of_thread(tid):
    with open(f"/proc/self/task/{tid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])


def test_the_compression_thread_runs_below_the_record_path(tmp_path):
    niceness = []

    def observed_compressor(plain, packed):
        niceness.append(nice_of_thread(threading.get_native_id()))
        gzip_file(plain, packed)

    directory = LogDirectory(tmp_path, max_file_bytes=1000, max_total_bytes=100_000, compressor=observed_compressor,
                             background=True)
    live = directory.open_live("edgesense.log")
    write(live, numbered_lines(21))
    directory.close()

    listener_nice = nice_of_thread(threading.get_native_id())
    assert niceness == [min(19, listener_nice + COMPRESSION_NICENESS)]
    assert sorted(os.listdir(tmp_path)) == ["edgesense.log", "edgesense.log.1.gz"]

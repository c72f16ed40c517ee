"""The publisher's backlog: readings.jsonl followed across rotation and
compression from a persistent cursor, with ids that survive both."""

import json
import os

from app.backlog import CURSOR_FILE, Backlog
from logging_setup.directory import LogDirectory


def writer(folder, max_file_bytes=4096, max_total_bytes=1 << 20):
    directory = LogDirectory(folder, max_file_bytes, max_total_bytes, compress=True, report=lambda m: None)
    return directory.open_live("readings.jsonl")


def write_readings(live, start, count, pad=lambda: b"x" * 60):
    for n in range(start, start + count):
        assert live.append(b'{"sensor":"s","value":%d,"pad":"%s"}\n' % (n, pad()))
        live.flush()


def read_all(backlog, batch=7):
    backlog.refresh()
    found = []
    while True:
        more = backlog.lines(batch)
        if not more:
            return found
        found += more


def values(lines):
    return [json.loads(line.text)["value"] for line in lines]


def test_every_line_in_order_across_rotated_and_compressed_files(tmp_path):
    live = writer(tmp_path)
    write_readings(live, 0, 300)
    assert any(name.endswith(".gz") for name in os.listdir(tmp_path))
    assert values(read_all(Backlog(tmp_path))) == list(range(300))


def test_ids_are_the_same_when_read_again_after_more_rotations(tmp_path):
    live = writer(tmp_path)
    write_readings(live, 0, 100)
    first = {json.loads(line.text)["value"]: (line.key, line.number) for line in read_all(Backlog(tmp_path))}
    write_readings(live, 100, 200)
    again = {json.loads(line.text)["value"]: (line.key, line.number) for line in read_all(Backlog(tmp_path))}
    assert {value: again[value] for value in first} == first
    assert len(set(again.values())) == 300


def test_a_saved_cursor_resumes_after_the_last_acknowledged_line(tmp_path):
    live = writer(tmp_path)
    write_readings(live, 0, 120)
    backlog = Backlog(tmp_path)
    lines = read_all(backlog)
    backlog.acknowledge(lines[49].after)
    backlog.save()
    backlog.close()
    write_readings(live, 120, 80)
    resumed = Backlog(tmp_path)
    assert resumed.pending() == 150
    assert values(read_all(resumed)) == list(range(50, 200))


def test_rewind_hands_out_the_unacknowledged_lines_again(tmp_path):
    write_readings(writer(tmp_path), 0, 30)
    backlog = Backlog(tmp_path)
    lines = read_all(backlog)
    backlog.acknowledge(lines[9].after)
    backlog.rewind()
    assert [line.number for line in read_all(backlog)] == [line.number for line in lines[10:]]


def test_readings_the_budget_deleted_before_acknowledgement_are_counted_lost(tmp_path):
    live = writer(tmp_path, max_file_bytes=4096, max_total_bytes=16384)
    write_readings(live, 0, 40)
    backlog = Backlog(tmp_path)
    lines = read_all(backlog)
    backlog.acknowledge(lines[4].after)
    for start in range(40, 1000, 20):
        write_readings(live, start, 20, pad=lambda: os.urandom(30).hex().encode())
        backlog.refresh()
    assert backlog.state.lost > 0
    backlog.rewind()
    remaining = values(read_all(backlog))
    assert remaining[-1] == 999
    assert backlog.state.lost == remaining[0] - 5
    assert remaining == list(range(remaining[0], 1000))


def test_the_cursor_is_a_small_file_in_the_folder_and_no_temporary_is_left(tmp_path):
    write_readings(writer(tmp_path), 0, 10)
    backlog = Backlog(tmp_path)
    backlog.acknowledge(read_all(backlog)[-1].after)
    backlog.save()
    assert os.path.getsize(tmp_path / CURSOR_FILE) < 512
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_symlink_under_the_cursor_name_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    write_readings(writer(tmp_path / "logs"), 0, 5)
    os.symlink(target, tmp_path / "logs" / CURSOR_FILE)
    backlog = Backlog(tmp_path / "logs")
    assert values(read_all(backlog)) == list(range(5))
    backlog.acknowledge(backlog.read_at)
    backlog.save()
    assert target.read_text() == "keep me"
    assert not os.path.islink(tmp_path / "logs" / CURSOR_FILE)


def test_nothing_is_skipped_while_files_rotate_under_the_reader(tmp_path):
    import threading
    import time

    live = writer(tmp_path, max_file_bytes=4096, max_total_bytes=1 << 22)
    done = threading.Event()

    def write():
        for start in range(0, 3000, 10):
            write_readings(live, start, 10)
            time.sleep(0.0005)
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    backlog, found = Backlog(tmp_path), []
    deadline = time.monotonic() + 30
    while len(found) < 3000 and time.monotonic() < deadline:
        backlog.refresh()
        found += backlog.lines(50)
    thread.join()
    assert values(found) == list(range(3000))
    assert len({(line.key, line.number) for line in found}) == 3000


def test_the_cursor_counts_in_the_storage_budget(tmp_path):
    write_readings(writer(tmp_path), 0, 10)
    backlog = Backlog(tmp_path)
    backlog.acknowledge(read_all(backlog)[-1].after)
    backlog.save()
    backlog.close()
    directory = LogDirectory(tmp_path, 4096, 1 << 20, compress=True, report=lambda m: None)
    directory.open_live("readings.jsonl")
    on_disk = sum(path.stat().st_size for path in tmp_path.iterdir())
    assert (tmp_path / CURSOR_FILE).stat().st_size > 0
    assert directory.used_bytes() == on_disk

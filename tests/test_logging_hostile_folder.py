"""The log folder as hostile and faulty ground (L10, L11): planted links and
foreign files, a folder deleted or full, a clock that jumps, what a power
cut leaves behind, files that vanish while the folder is listed."""

import os
import shutil
import threading
import time

import pytest

from helpers import file_lines, fill_disk, numbered_lines, wait_for
from logging_setup.directory import LogDirectory
from logging_setup.folder import FILE_MODE, FOLDER_MODE


def rotated_indexes(path, live_name):
    names = [name for name in os.listdir(path) if name.startswith(live_name + ".")]
    return sorted(int(name.split(".")[2]) for name in names if name.split(".")[2].isdigit())


def every_line(path, live_name="edgesense.log"):
    """The lines of the rotated files (oldest first) and the live file."""
    lines = []
    for index in rotated_indexes(path, live_name):
        for name in (f"{live_name}.{index}", f"{live_name}.{index}.gz"):
            if (path / name).is_file() and not (path / name).is_symlink():
                lines += file_lines(path / name)
    return lines + file_lines(path / live_name)


def write(live, lines):
    for line in lines:
        live.append(line)
    live.flush()


@pytest.fixture
def victim(tmp_path):
    """A file outside the folder that a planted link points at."""
    path = tmp_path / "victim"
    path.write_bytes(b"precious\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.mark.parametrize("name", ["edgesense.log", "readings.jsonl"])
def test_a_link_planted_as_a_live_file_is_never_followed(folder, victim, name):
    os.symlink(victim, folder / name)
    reports = []
    directory = LogDirectory(folder, 1000, 100_000, report=reports.append)
    live = directory.open_live(name)
    write(live, numbered_lines(50))
    write(live, numbered_lines(50))
    live.close()

    assert victim.read_bytes() == b"precious\n"
    assert os.stat(victim).st_mode & 0o777 == 0o600
    assert os.path.islink(folder / name)
    assert reports == [f"edgesense: cannot write {folder / name}: {folder / name} is a symbolic link; "
                       "dropping its lines until writing works again"]


def test_links_planted_at_rotated_and_temporary_names_are_stepped_around(folder, victim):
    reports = []
    directory = LogDirectory(folder, 1000, 100_000, report=reports.append)
    live = directory.open_live("edgesense.log")
    for name in ["edgesense.log.1", "edgesense.log.new", "edgesense.log.2.gz.tmp", "edgesense.log.2.gz"]:
        os.symlink(victim, folder / name)
    lines = numbered_lines(70)
    write(live, lines)
    live.close()

    assert victim.read_bytes() == b"precious\n"
    assert all(os.path.islink(folder / name) for name in ["edgesense.log.1", "edgesense.log.new",
                                                           "edgesense.log.2.gz.tmp", "edgesense.log.2.gz"])
    assert sorted(os.listdir(folder)) == sorted(["edgesense.log", "edgesense.log.1", "edgesense.log.new",
                                                 "edgesense.log.2", "edgesense.log.2.gz.tmp",
                                                 "edgesense.log.2.gz", "edgesense.log.3.gz",
                                                 "edgesense.log.4.gz"])
    assert file_lines(folder / "edgesense.log.2") + file_lines(folder / "edgesense.log.3.gz") \
        + file_lines(folder / "edgesense.log.4.gz") + file_lines(folder / "edgesense.log") == lines
    assert reports[0] == (f"edgesense: {folder / 'edgesense.log.1'} is a symbolic link, not a file "
                          "edgesense wrote; leaving it alone")
    assert [report for report in reports if "compress" in report] == [
        f"edgesense: cannot compress {folder / 'edgesense.log.2'}: [Errno 17] File exists: "
        f"'{reports[1].split(chr(39))[1]}' -> 'edgesense.log.2.gz'; leaving it uncompressed"]
    assert reports[1].split(chr(39))[1].startswith("edgesense.log.2.gz.")


def test_a_file_of_another_user_or_with_another_link_is_foreign(folder, tmp_path):
    (folder / "edgesense.log").write_bytes(b"someone else's\n")
    os.chown(folder / "edgesense.log", 4242, 4242)
    (folder / "readings.jsonl").write_bytes(b"")
    os.link(folder / "readings.jsonl", tmp_path / "second-link")
    reports = []
    directory = LogDirectory(folder, 1000, 100_000, report=reports.append)
    for name in ["edgesense.log", "readings.jsonl"]:
        write(directory.open_live(name), numbered_lines(3))

    assert (folder / "edgesense.log").read_bytes() == b"someone else's\n"
    assert (folder / "readings.jsonl").read_bytes() == b""
    assert [report.split(": ", 2)[2] for report in reports] == [
        f"{folder / 'edgesense.log'} is a file of user 4242; dropping its lines until writing works again",
        f"{folder / 'readings.jsonl'} is a file with 2 links; dropping its lines until writing works again",
    ]


def test_files_and_folder_are_created_0640_and_0750_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        directory = LogDirectory(tmp_path / "logs", 1000, 100_000)
        live = directory.open_live("edgesense.log")
        write(live, numbered_lines(70))
        live.close()
    finally:
        os.umask(previous)
    modes = {name: os.stat(tmp_path / "logs" / name).st_mode & 0o777 for name in os.listdir(tmp_path / "logs")}
    assert (FILE_MODE, FOLDER_MODE) == (0o640, 0o750)
    assert os.stat(tmp_path / "logs").st_mode & 0o777 == 0o750
    assert modes == {"edgesense.log": 0o640, "edgesense.log.1.gz": 0o640, "edgesense.log.2.gz": 0o640,
                     "edgesense.log.3.gz": 0o640}


def test_a_folder_deleted_while_running_is_created_again_and_reported_once(folder):
    reports = []
    directory = LogDirectory(folder, 1000, 100_000, report=reports.append)
    log, readings = directory.open_live("edgesense.log"), directory.open_live("readings.jsonl")
    write(log, numbered_lines(30))
    shutil.rmtree(folder)
    started = time.monotonic()
    write(log, numbered_lines(30, start=30))
    write(readings, numbered_lines(2))
    assert time.monotonic() - started < 1.0
    write(log, numbered_lines(30, start=60))

    assert every_line(folder) == numbered_lines(60, start=30)
    assert file_lines(folder / "readings.jsonl") == numbered_lines(2)
    assert reports == [f"edgesense: the log folder {folder} was removed; created it again"]


def test_age_is_the_rotation_index_not_the_clock(folder):
    directory = LogDirectory(folder, 1000, 3500, compress=False)
    live = directory.open_live("edgesense.log")
    write(live, numbered_lines(60))
    newest = max(rotated_indexes(folder, "edgesense.log"))
    os.utime(folder / f"edgesense.log.{newest}", (1_000_000, 1_000_000))  # the clock was set back
    write(live, numbered_lines(20, start=60))

    kept = every_line(folder)
    assert kept == numbered_lines(80)[-len(kept):]
    assert len(kept) >= 50


def test_a_folder_at_a_rotated_name_is_stepped_around_and_reported_once(folder):
    (folder / "edgesense.log.1").mkdir()
    reports = []
    directory = LogDirectory(folder, 1000, 100_000, compress=False, report=reports.append)
    live = directory.open_live("edgesense.log")
    lines = numbered_lines(100)
    write(live, lines)
    live.close()

    assert os.path.getsize(folder / "edgesense.log") <= 1000
    assert every_line(folder)[-100:] == lines
    assert rotated_indexes(folder, "edgesense.log") == [1, 2, 3, 4, 5]
    assert reports == [f"edgesense: {folder / 'edgesense.log.1'} is a folder, not a file edgesense wrote; "
                       "leaving it alone"]


def test_a_live_file_still_linked_as_rotated_after_a_power_cut_is_not_read_twice(folder):
    directory = LogDirectory(folder, 1000, 100_000, compress=False)
    write(directory.open_live("edgesense.log"), numbered_lines(30))
    os.link(folder / "edgesense.log", folder / "edgesense.log.2")  # the cut came between link and rename
    again = LogDirectory(folder, 1000, 100_000, compress=False).open_live("edgesense.log")
    write(again, numbered_lines(5, start=30))

    assert every_line(folder) == numbered_lines(35)


def test_a_torn_last_line_is_cut_off_at_start_and_said(folder):
    (folder / "readings.jsonl").write_bytes(b'{"ts":"2026-12-01T18:00"}\n{"ts":"2026-12-01T18')
    reports = []
    live = LogDirectory(folder, 1000, 100_000, report=reports.append).open_live("readings.jsonl")
    write(live, [b'{"ts":"2026-12-01T18:01"}\n'])

    assert (folder / "readings.jsonl").read_bytes() == b'{"ts":"2026-12-01T18:00"}\n{"ts":"2026-12-01T18:01"}\n'
    assert reports == [f"edgesense: cut a torn last line of 20 bytes off {folder / 'readings.jsonl'}"]


def test_temporary_files_a_crash_left_are_removed_at_start_but_no_foreign_entry(folder, victim):
    for name in ["edgesense.log.new", "edgesense.log.1a2b3c4d.new", "edgesense.log.7.gz.0badf00d.tmp",
                 "readings.jsonl.3.gz.tmp"]:
        (folder / name).write_bytes(b"torn")
    os.symlink(victim, folder / "edgesense.log.9.gz.tmp")
    directory = LogDirectory(folder, 1000, 100_000)
    directory.open_live("edgesense.log")
    directory.open_live("readings.jsonl")

    assert sorted(os.listdir(folder)) == ["edgesense.log", "edgesense.log.9.gz.tmp", "readings.jsonl"]


def test_files_that_vanish_while_the_folder_is_listed_lose_no_line(folder):
    directory = LogDirectory(folder, 2000, 10_000_000, compress=False)
    live = directory.open_live("edgesense.log")
    stop = threading.Event()

    def churn():  # the supervisor's state-file temporaries, made and renamed away
        while not stop.is_set():
            for n in range(50):
                (folder / f".state-{n}").write_bytes(b"{}")
            for n in range(50):
                os.unlink(folder / f".state-{n}")

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        deadline = time.monotonic() + 2.5
        lines = numbered_lines(20_000)
        for start in range(0, len(lines), 100):
            write(live, lines[start:start + 100])
            if time.monotonic() > deadline:
                lines = lines[:start + 100]
                break
    finally:
        stop.set()
        churner.join(10)
    live.close()
    assert every_line(folder) == lines


@pytest.fixture
def small_disk(small_tmpfs):
    """A folder to create on a 256 KiB file system."""
    return small_tmpfs / "logs"


def test_a_disk_filled_by_its_own_files_frees_the_oldest_and_goes_on(small_disk):
    reports = []
    directory = LogDirectory(small_disk, 16384, 100 * 1024 * 1024, compress=False, report=reports.append)
    live = directory.open_live("edgesense.log")
    lines = numbered_lines(20_000)  # a megabyte on a 256 KiB file system
    for start in range(0, len(lines), 50):
        write(live, lines[start:start + 50])
    live.close()

    kept = every_line(small_disk)
    assert kept == lines[-len(kept):]
    assert len(kept) > 2000
    assert reports == []


def test_a_full_disk_takes_a_finished_archive_before_any_history(small_disk):
    """The archive finished but not yet renamed holds the plain copy's room:
    renaming it frees that, so the line fits and no history is deleted."""
    reports = []
    directory = LogDirectory(small_disk, 16384, 100 * 1024 * 1024, report=reports.append, background=True)
    live = directory.open_live("edgesense.log")
    lines = numbered_lines(400)
    for start in range(0, len(lines), 50):  # rotates once, at about line 330
        write(live, lines[start:start + 50])
    wait_for(lambda: all(job.done.is_set() for job in directory._compressing), 20.0, what="the archive")
    fill_disk(small_disk)
    write(live, numbered_lines(100, start=400))  # more than the live file's last page holds
    os.unlink(small_disk / "filler")
    directory.close()

    assert sorted(os.listdir(small_disk)) == ["edgesense.log", "edgesense.log.1.gz"]
    assert every_line(small_disk) == numbered_lines(500)
    assert reports == []


def test_a_disk_full_of_nothing_of_its_own_drops_and_reports_once(small_disk):
    reports = []
    directory = LogDirectory(small_disk, 16384, 100 * 1024 * 1024, compress=False, report=reports.append)
    live = directory.open_live("edgesense.log")
    fill_disk(small_disk)
    for start in range(0, 200, 10):
        write(live, numbered_lines(10, start=start))
    os.unlink(small_disk / "filler")
    write(live, numbered_lines(1, start=1000))

    assert file_lines(small_disk / "edgesense.log")[-1] == numbered_lines(1, start=1000)[0]
    assert [report.split(": ")[1] for report in reports] == ["cannot write " + str(small_disk / "edgesense.log"),
                                                            "writing " + str(small_disk / "edgesense.log")
                                                            + " again; 200 records were lost meanwhile"]


def test_a_live_name_held_by_a_foreign_entry_drops_its_lines_without_end(folder, victim):
    """Lines for a file that cannot be opened never count as written, so
    neither rotation nor the budget waits on them."""
    os.symlink(victim, folder / "edgesense.log")
    reports = []
    directory = LogDirectory(folder, 1000, 5000, report=reports.append)
    live = directory.open_live("edgesense.log")
    for start in range(0, 500, 10):
        write(live, numbered_lines(10, start=start))
    os.unlink(folder / "edgesense.log")
    time.sleep(1.05)  # a foreign live name is looked at again a second later
    write(live, numbered_lines(1, start=500))

    assert file_lines(folder / "edgesense.log") == numbered_lines(1, start=500)
    assert victim.read_bytes() == b"precious\n"
    assert reports[1:] == [f"edgesense: writing {folder / 'edgesense.log'} again; 500 records were lost meanwhile"]

"""The one-tree-per-configuration lock, with real processes holding it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.treelock import AlreadyRunning, TreeLock, TreeLockError, lock_held, lock_path
from running_tree import wait_for

ROOT = Path(__file__).resolve().parent.parent


def hold_in_another_process(path):
    """A process that takes the lock and sleeps; returns it once it holds it."""
    code = f"from app.treelock import TreeLock\nTreeLock({str(path)!r}).acquire()\nprint('held', flush=True)\n" \
           "import time\ntime.sleep(60)\n"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert holder.stdout.readline() == "held\n"
    return holder


def test_lock_path_is_beside_the_state_file(tmp_path):
    assert lock_path(tmp_path / "edgesense.state.json") == tmp_path / "edgesense.state.json.lock"


def test_a_second_holder_is_told_who_holds_the_lock_and_since_when(tmp_path):
    path = tmp_path / "state" / "x.lock"
    holder = hold_in_another_process(path)
    try:
        before = path.read_bytes()
        with pytest.raises(AlreadyRunning) as raised:
            TreeLock(path).acquire()
        assert raised.value.holder["pid"] == holder.pid
        assert abs(raised.value.holder["since"] - time.time()) < 30
        assert raised.value.describe("/etc/edgesense/config.toml").startswith(
            f"edgesense already runs with /etc/edgesense/config.toml (pid {holder.pid}, since ")
        assert path.read_bytes() == before
        assert lock_held(path) is True
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_free_once_its_holder_is_killed(tmp_path):
    path = tmp_path / "x.lock"
    holder = hold_in_another_process(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_held(path) is False
    with TreeLock(path):
        assert path.read_text().startswith(f'{{"pid": {os.getpid()}, "since": ')
        assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_no_lock_file_is_not_known(tmp_path):
    assert lock_held(tmp_path / "none.lock") is None


def test_a_link_in_place_of_the_lock_file_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "x.lock").symlink_to(target)
    with pytest.raises(TreeLockError, match="cannot open the lock file"):
        TreeLock(tmp_path / "x.lock").acquire()
    assert target.read_text() == "keep"


def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    path = tmp_path / "x.lock"
    lock = TreeLock(path).acquire()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        os.write(writer, b"x")
        time.sleep(30)
        os._exit(0)
    try:
        os.close(writer)
        assert os.read(reader, 1) == b"x"
        lock.release()
        wait_for(lambda: lock_held(path) is False, 5, what="the lock free while the child lives")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

import multiprocessing
import subprocess

import pytest

from helpers import START_METHODS

ONE_WORKER_MODULES = ("tests/test_deploy.py",)
"""Test modules whose session fixtures are costly (test_deploy.py builds a
wheelhouse and installs a root once): under pytest-xdist all their tests
run on one worker, so each fixture is still built once per run."""


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduler: each test goes to the next free worker on
    its own, except the tests of ONE_WORKER_MODULES, which go together (the
    largest group first)."""
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return OneWorkerModules(config, log)


@pytest.fixture(params=START_METHODS)
def start_method(request):
    """Each multiprocessing start method by name: a test using it runs once per method."""
    return request.param


@pytest.fixture
def mp_context(start_method):
    """A multiprocessing context for each start method."""
    return multiprocessing.get_context(start_method)


@pytest.fixture
def mock_factory():
    """gpiozero's MockFactory installed as the default pin factory, reset and
    removed afterwards (like gpiozero's own fixture)."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    saved = Device.pin_factory
    factory = Device.pin_factory = MockFactory()
    yield factory
    factory.reset()
    factory.close()
    Device.pin_factory = saved


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs at ``tmp_path / "logs"``, to fill the disk for real."""
    mount_point = tmp_path / "logs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here; the file-size-limit variant covers the failure")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)

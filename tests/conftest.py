import multiprocessing

import pytest

START_METHODS = ["fork", "forkserver", "spawn"]


@pytest.fixture(params=START_METHODS)
def mp_context(request):
    """A multiprocessing context for each start method."""
    return multiprocessing.get_context(request.param)


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

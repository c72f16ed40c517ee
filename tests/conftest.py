import multiprocessing

import pytest

from helpers import START_METHODS


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

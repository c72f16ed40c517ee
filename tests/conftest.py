import multiprocessing

import pytest

START_METHODS = ["fork", "forkserver", "spawn"]


@pytest.fixture(params=START_METHODS)
def mp_context(request):
    """A multiprocessing context for each start method."""
    return multiprocessing.get_context(request.param)

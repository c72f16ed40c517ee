"""Every child's entry: what escapes its target is one line naming it."""

import pytest

from app.child_entry import ChildEntry, one_line


def fail(message):
    raise PermissionError(13, message)


def succeed(path, mode="r"):
    return None


def test_an_exception_out_of_a_child_is_one_prefixed_line_and_exit_1(mp_context, capfd):
    process = mp_context.Process(target=ChildEntry("log-listener", "es:log-listener", fail),
                                 args=("Permission denied:\n'logs'",))
    process.start()
    process.join(30)
    assert process.exitcode == 1
    err = capfd.readouterr().err
    assert err == f"edgesense: log-listener (pid {process.pid}): PermissionError: [Errno 13] Permission denied: 'logs'\n"


def test_a_child_that_ends_normally_says_nothing(mp_context, capfd):
    process = mp_context.Process(target=ChildEntry("sensor door", "es:door", succeed), args=("x",))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("error, text", [(ValueError("a\nb  c"), "ValueError: a b c"), (KeyError(), "KeyError")])
def test_one_line(error, text):
    assert one_line(error) == text

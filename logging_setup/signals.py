"""The signals every child of the supervisor ignores."""

import signal

TREE_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What a terminal or ``systemctl kill`` sends to the whole process group.
The supervisor acts on them and orders stops and reloads; its children
ignore them."""


def ignore_tree_signals():
    """Ignore TREE_SIGNALS, then unblock them: the supervisor starts every
    child with them blocked, so none arrives before it is ignored."""
    for signum in TREE_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, TREE_SIGNALS)

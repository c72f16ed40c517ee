"""Names the fork server in ``ps`` as every other process of the tree names
itself: ``edgesense: fork server``, short name ``es:forkserver``.

The fork server runs no edgesense code of its own, only the imports of its
preload list (``supervisor.FORKSERVER_PRELOAD``), so importing this module
is what names it. Any other process that imports it (a test collecting
modules) keeps its name: the fork server is the process multiprocessing
started as ``python -c`` with its forkserver module loaded.
"""

import sys

from app.proctitle import name_process


def is_the_fork_server(argv=None, modules=None):
    argv = sys.argv if argv is None else argv
    modules = sys.modules if modules is None else modules
    return argv == ["-c"] and "multiprocessing.forkserver" in modules


if is_the_fork_server():
    name_process("fork server", "es:forkserver")

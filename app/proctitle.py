"""Every process of the tree says what it is, in ``ps``, ``top`` and ``htop``.

Two names are set. The command line (``ps -o args``, htop) becomes
``edgesense: sensor door``, through ``setproctitle``: a worker's own
command line is whatever started it (the supervisor's under fork,
multiprocessing's bootstrap under forkserver and spawn), often shorter than
the title, and only that library knows how to make room for a longer one on
every platform (it moves the environment block aside). The short name
(``ps -o comm``, top's default column) is written to ``/proc/self/comm``,
which the kernel cuts at 15 bytes: ``edgesense`` for the supervisor,
``es:log-listener``, ``es:door``.
"""

import setproctitle

COMM_BYTES = 15
"""The kernel keeps this many bytes of a process's short name."""


def name_process(title, short):
    """``title`` after ``edgesense: `` as the command line, ``short`` (cut to
    COMM_BYTES) as the short name."""
    setproctitle.setproctitle(f"edgesense: {title}")
    try:
        with open("/proc/self/comm", "w", encoding="utf-8") as comm:
            comm.write(short.encode("utf-8")[:COMM_BYTES].decode("utf-8", "ignore"))
    except OSError:
        pass  # not Linux, or no /proc: the command line says it all

"""The read scheduler: a ``schedule.Scheduler`` that keeps every job on
its period whatever the reads take and the wall clock does (DESIGN.md,
Sensors)."""

import datetime
import logging
import time

import schedule

log = logging.getLogger(__name__)

JUMP_TOLERANCE = 1.0
"""Seconds by which wall-clock and monotonic progress may differ before the
difference counts as a jump of the wall clock."""


class SystemClock:
    """The real clocks. Tests pass an object with the same two methods."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


class ReadScheduler(schedule.Scheduler):
    """A ``schedule.Scheduler`` that keeps every job on its period.

    Plain schedule computes a job's next run from the wall clock after the
    job returns, so a 0.4 s job at a 1 s interval runs every 1.4 s, and a
    wall-clock jump back by an hour stalls it for an hour. This scheduler:

    - reads time from ``clock`` (``time()`` and ``monotonic()``), so tests
      can jump it instead of waiting;
    - plans the next run from the planned time of the one that just ran; if
      that is already past (a job that overran its interval) it skips to the
      next slot still ahead: no burst of catch-up runs;
    - compares wall-clock progress with monotonic progress each time it is
      asked, and when they differ by more than ``jump_tolerance`` seconds it
      shifts every job by the difference, so jobs stay on their period.

    Jobs must not raise (schedule lets the exception out and the job stays
    overdue); wrap them. Times are naive UTC, so a daylight-saving change is
    not a jump. New jobs are planned with ``add`` (first run at once). Only
    schedule's public API is used (``Job.run``, ``next_run``, ``jobs``).

    >>> class Clock:
    ...     wall, mono = 1_800_000_000.0, 0.0
    ...     def time(self): return self.wall
    ...     def monotonic(self): return self.mono
    >>> clock, runs = Clock(), []
    >>> scheduler = ReadScheduler(clock)
    >>> _ = scheduler.add(2, lambda: runs.append(clock.mono))
    >>> scheduler.run_pending()
    >>> scheduler.idle_seconds
    2.0
    >>> clock.wall += 3600  # the wall clock jumps an hour ahead
    >>> scheduler.idle_seconds  # the next read stays 2 s away
    2.0
    >>> runs
    [0.0]
    """

    def __init__(self, clock=SystemClock, jump_tolerance=JUMP_TOLERANCE):
        super().__init__()
        self.clock = clock
        self.jump_tolerance = jump_tolerance
        self._last_clocks = None

    def now(self):
        stamp = datetime.datetime.fromtimestamp(self.clock.time(), datetime.UTC)
        return stamp.replace(tzinfo=None)

    def add(self, interval, job_func):
        """Run ``job_func`` now and then every ``interval`` seconds."""
        if not interval > 0:
            raise ValueError(f"interval must be greater than 0, not {interval!r}")
        job = self.every(interval).seconds.do(job_func)
        job.next_run = self.now()
        return job

    def run_pending(self):
        self.follow_wall_clock()
        now = self.now()
        for job in sorted(job for job in self.jobs if job.next_run <= now):
            planned = job.next_run
            job.run()
            # A jump during the run moved the other jobs; move this one too.
            job.next_run = self._slot_after(planned + self.follow_wall_clock(), job)

    @property
    def idle_seconds(self):
        self.follow_wall_clock()
        if not self.jobs:
            return None
        return max(0.0, (self.next_run - self.now()).total_seconds())

    def _slot_after(self, planned, job):
        period = datetime.timedelta(**{job.unit: job.interval})
        next_run = planned + period
        now = self.now()
        if next_run <= now:
            skipped = (now - planned) // period
            next_run = planned + (skipped + 1) * period
            log.warning("a run took longer than its %s s interval; skipping %d"
                        " run(s) to stay on the period",
                        period.total_seconds(), skipped)
        return next_run

    def follow_wall_clock(self):
        """Shift every job by a wall-clock jump since the last call; return
        the shift (zero when the clock did not jump)."""
        wall, mono = self.clock.time(), self.clock.monotonic()
        last_clocks, self._last_clocks = self._last_clocks, (wall, mono)
        shift = datetime.timedelta(0)
        if last_clocks is None:
            return shift
        jump = (wall - last_clocks[0]) - (mono - last_clocks[1])
        if abs(jump) > self.jump_tolerance:
            shift = datetime.timedelta(seconds=jump)
            for job in self.jobs:
                job.next_run += shift
            log.warning("the wall clock jumped by %+.1f s; readings keep"
                        " their period", jump)
        return shift

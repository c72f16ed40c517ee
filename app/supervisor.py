"""The supervisor: starts the tree in order, keeps every child running,
and stops the tree without losing a log line.

    edgesense run                  supervisor (MainProcess)
     ├─ log-listener               owns every output handler
     ├─ publisher                  only with an [mqtt] table: readings -> broker
     └─ sensor:<name>   × N        one per [[sensor]]

Every child is a ``ManagedChild`` (``app/process.py``) with its own
``RestartPolicy``; a new kind of child is a policy and a launch function
added to ``Supervisor._children``.

Signal handlers only record the signal; the one loop acts on it. The loop
blocks on the children's sentinels, a signal wake-up socket and the next
timer, so an idle tree does not wake on a fixed short period, and it never
waits on one child: stopping is a state with a deadline that the loop
advances like every other timer.
"""

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import select
import signal
import socket
import sys
import time
from multiprocessing import connection, forkserver, resource_tracker

from app.backlog import publisher_status
from app.child_entry import ChildEntry
from app.config import ConfigError, load_config
from app.exit_status import ExitStatus
from app.heartbeat import Heartbeat
from app.notify import Notifier
from app.process import (Launched, ManagedChild, ManagedSensor, RestartPolicy, TransitionError, sensor_launched,
                         sensor_policy)
from app.proctitle import name_process
from app.publisher import STOP_SECONDS as PUBLISHER_GOODBYE_SECONDS
from app.publisher import run_publisher
from app.statefile import write_state
from app.states import ALIVE, SUPERVISOR_TRANSITIONS, WAITING, ChildState, SupervisorPhase
from app.treelock import AlreadyRunning, TreeLock, TreeLockError, lock_path
from app.worker import run_worker, sending_level
from logging_setup import LogTransport, configure_process, run_listener
from logging_setup.signals import TREE_SIGNALS
from sensors import pins, registry

logger = logging.getLogger(__name__)


FORKSERVER_PRELOAD = [
    "app.fork_server_name",
    "app.child_entry",
    "app.worker",
    "app.publisher",
    *sorted({path.partition(":")[0] for path in registry.BUILTIN_TYPES.values()}),
    "importlib.metadata",
    "multiprocessing.sharedctypes",
]
"""Imported once by the fork server so that workers share those pages:
the module that names the fork server in ps, every child's entry
(setproctitle with it), the worker, every built-in sensor module (gpiozero
with them), what gpiozero uses to find its pin factories, and what the
heartbeat's shared memory needs. Importing gpiozero is fine; creating a pin
factory there is not (lgpio would start a thread and open a FIFO that every
forked worker then finds busy)."""

LISTENER_DRAIN_TIMEOUT = 10.0
"""Seconds the listener may take to write what was sent before its stop."""

LISTENER_QUICK_DEATH = 1.0
"""A listener that dies sooner than this after its start is restarted
after a growing delay instead of at once."""

LISTENER_FIRST_DELAY = 0.5
"""Seconds before the restart of a listener that died quickly, doubling
after each further quick death."""

LISTENER_MAX_QUICK_DEATHS = 5
"""Quick deaths in a row after which the listener cannot start: the tree
stops with exit status 1 and systemd's own limits take over."""

PUBLISHER_STATUS_FIELDS = ("connected", "broker", "problem", "backlog", "oldest_pending_ts", "last_acked", "lost")
"""What the state file's ``publisher`` entry takes from the publisher's own word."""

STATE_REFRESH = 15.0
"""Seconds between state-file refreshes of the sensors' last readings."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

FORKSERVER_LOST_EXIT = 255
"""The exit code multiprocessing reports for every child of a fork server
that died, whether or not the child still runs."""

CUT_OFF_KILL_TIMEOUT = 5.0
"""Seconds to wait for a cut-off child to be gone after SIGKILL."""


@contextlib.contextmanager
def tree_signals_blocked():
    """Block TREE_SIGNALS while a child starts. The child inherits the mask,
    ignores those signals and then unblocks them, so a Ctrl-C or a group
    SIGHUP in the middle of its start-up cannot kill it; the supervisor gets
    its own copy when the mask is restored."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, TREE_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def kill_cut_off_child(process):
    """Whether ``process`` still ran although multiprocessing says it ended
    (its fork server died); if so it is killed and gone when this returns,
    so that its pins are free for the next one."""
    if process.exitcode != FORKSERVER_LOST_EXIT:
        return False
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return False
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], CUT_OFF_KILL_TIMEOUT)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    return True


def listener_policy(settings):
    """The listener's policy: at once after a run of LISTENER_QUICK_DEATH
    seconds, after a growing delay after a quicker death, and never again
    after LISTENER_MAX_QUICK_DEATHS quick deaths in a row."""
    return RestartPolicy(
        backoff_initial=min(LISTENER_FIRST_DELAY, settings.backoff_max), backoff_max=settings.backoff_max,
        stable_after=LISTENER_QUICK_DEATH, stop_timeout=LISTENER_DRAIN_TIMEOUT,
        at_once_after_stable=True, max_quick_exits=LISTENER_MAX_QUICK_DEATHS,
    )


def publisher_policy(settings):
    """The publisher's policy: a sensor's (backoff, failed and cool-down),
    with time to say ``offline`` and take the last acknowledgements at a stop."""
    return dataclasses.replace(sensor_policy(settings),
                               stop_timeout=max(settings.stop_timeout, PUBLISHER_GOODBYE_SECONDS + 2))


class ProcessLauncher:
    """Starts the tree's processes from one multiprocessing context, each
    with TREE_SIGNALS blocked while it starts. Tests pass an object with the
    same methods that starts no process."""

    def __init__(self, ctx):
        self.ctx = ctx

    def start(self, target, name, args=(), kwargs=None):
        process = self.ctx.Process(target=target, name=name, args=args, kwargs=kwargs or {}, daemon=True)
        with tree_signals_blocked():
            process.start()
        return process

    def pipe(self):
        """``(receiver, sender)`` of a one-way pipe."""
        return self.ctx.Pipe(duplex=False)

    def heartbeat(self, previous=None):
        return Heartbeat.create(self.ctx, previous=previous)

    def moment(self):
        """A shared double (``.value``, 0 until a child sets it)."""
        return self.ctx.RawValue("d", 0.0)


def run_service(config):
    """Run the tree until SIGTERM or SIGINT; return the exit status: 0, 1
    when a child cannot start, 2 when a tree already runs with this config
    (then nothing is written)."""
    lock = TreeLock(lock_path(config.supervisor.state_file))
    try:
        lock.acquire()
    except AlreadyRunning as held:
        print(held.describe(config.path or "the built-in demo"), file=sys.stderr, flush=True)
        return ExitStatus.USAGE
    except TreeLockError as error:
        print(f"edgesense: {error}", file=sys.stderr, flush=True)
        return ExitStatus.FAILURE
    name_process("supervisor", "edgesense")
    try:
        return Supervisor(config).run()
    finally:
        lock.release()


class Supervisor:
    """The main process of ``edgesense run``: owns the log socket, the
    children (the listener and one ManagedSensor per sensor), and the only
    loop that acts on signals. ``environ``, ``now`` and ``launcher`` are
    passed in so that tests can give it a fake systemd, a fake clock and
    processes that are not started; ``configure_logging`` sends the
    supervisor's own records to the listener (tests keep their own)."""

    def __init__(self, config, environ=os.environ, now=time.monotonic, launcher=None,
                 configure_logging=configure_process):
        self.config = config
        self._now = now
        self._configure_logging = configure_logging
        self.ctx = multiprocessing.get_context(config.supervisor.start_method)
        if config.supervisor.start_method == "forkserver":
            self.ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        self.launcher = launcher or ProcessLauncher(self.ctx)
        self.notifier = Notifier(environ)
        self.transport = None
        self.listener = ManagedChild("log listener", listener_policy(config.supervisor),
                                     self._launch_listener, now)
        self.sensors = {s.name: self._new_sensor(s) for s in config.sensors}
        self.publisher = self._new_publisher() if config.mqtt is not None else None
        self.outgoing_publisher = None
        """The publisher a reload replaces or removes, until it has stopped:
        two publishers never share the cursor."""
        self.retiring = []
        """Sensors (and a publisher) removed or replaced by a reload, until they have stopped."""
        self.pending = []
        """New sensors of a reload, waiting for what they need to stop."""
        self.logging_fallback = None
        self.listener_reverted = False
        self.started_wall = time.time()
        self.phase = SupervisorPhase.STARTING
        self.phase_changed = True
        self.exit_status = ExitStatus.OK
        self.stopped_logged = False
        self.pending_signals = []
        self.stop_signal = None
        self.next_watchdog = None
        self.next_refresh = None
        self.last_published_readings = None
        self.state_file_failing = False
        self._wakeup = None

    def _children(self):
        """Every supervised child, the listener first."""
        return [self.listener, *self._stopped_before_listener()]

    def _stopped_before_listener(self):
        """The children a stop asks first; the listener drains once they
        have all stopped."""
        publishers = [child for child in (self.publisher, self.outgoing_publisher) if child is not None]
        return [*self.sensors.values(), *publishers, *self.retiring]

    def _set_phase(self, phase):
        """The one place the phase changes; only along SUPERVISOR_TRANSITIONS."""
        if (self.phase, phase) not in SUPERVISOR_TRANSITIONS:
            raise TransitionError(f"supervisor: {self.phase.value} -> {phase.value}")
        self.phase = phase
        self.phase_changed = True

    # -- the life of the tree -------------------------------------------

    def run(self):
        self._start_fork_server()
        self._install_signal_handlers()
        try:
            self.start()
            self._loop()
        finally:
            self._kill_leftovers()
            self._restore_signal_handlers()
            self.notifier.close()
            if self.transport is not None:
                self.transport.close()
        return self.exit_status

    def start(self):
        """Create the log socket, start the listener, then every sensor."""
        self.transport = LogTransport.create()
        self._start_child(self.listener)
        self._configure_logging(self.transport.sender, self.config.logging.level)
        logger.info(
            "edgesense starting: %d sensor(s), start method %s, logs in %s",
            len(self.sensors), self.config.supervisor.start_method, self.config.logging.dir,
        )
        for managed in self.sensors.values():
            self._start_child(managed)
        if self.publisher is not None:
            self._start_child(self.publisher)
        # STARTING -> RUNNING
        self._set_phase(SupervisorPhase.RUNNING)
        self.notifier.ready()
        if self.notifier.watchdog_interval:
            self.next_watchdog = self._now()
        self._publish(force=True)

    def _loop(self):
        while self.phase is not SupervisorPhase.STOPPED:
            self._handle_signals()
            ready = connection.wait(self._waitables(), self._timeout())
            if self._wakeup[0] in ready:
                self._drain_wakeup()
            self.advance()

    def advance(self):
        """One turn of the loop after its wait: reap the children that
        ended, act on every timer that is due, move the stop on, publish."""
        self._reap()
        self._run_timers()
        self.retiring = [m for m in self.retiring if m.state is not ChildState.STOPPED]
        if self.outgoing_publisher is not None and self.outgoing_publisher.state is ChildState.STOPPED:
            self.outgoing_publisher = None
        if self.phase is SupervisorPhase.RUNNING:
            self._start_unblocked()
        elif self.phase is SupervisorPhase.STOPPING:
            self._advance_stop()
        self._publish()

    def begin_stop(self, reason, exit_status=ExitStatus.OK):
        """RUNNING -> STOPPING: ask every child but the listener to stop;
        the listener stops after them (``_advance_stop``)."""
        if self.phase is not SupervisorPhase.RUNNING:
            return
        self.exit_status = exit_status
        # RUNNING -> STOPPING
        self._set_phase(SupervisorPhase.STOPPING)
        self.notifier.stopping()
        logger.info("%s", reason)
        self.pending.clear()
        for child in self._stopped_before_listener():
            child.request_stop()
        self._publish(force=True)

    def _advance_stop(self):
        """Once every other child has stopped: the supervisor's last line,
        then the listener's drain (with its deadline), then STOPPED."""
        if any(child.state is not ChildState.STOPPED for child in self._stopped_before_listener()):
            return
        if not self.stopped_logged:
            if self.listener.state is ChildState.STOPPING:
                return  # stopping for new [logging] settings: the last lines need the next one
            self.stopped_logged = True
            logger.info("edgesense stopped")
            if self.listener.state in (ChildState.STOPPED, *WAITING) and not self.listener.gave_up:
                self._start_child(self.listener)
            if not self.listener.gave_up:
                self.listener.request_stop()
        if self.listener.state is ChildState.STOPPED or self.listener.gave_up:
            # STOPPING -> STOPPED
            self._set_phase(SupervisorPhase.STOPPED)
            self._publish(force=True)

    def _start_fork_server(self):
        """Start the fork server with TREE_SIGNALS ignored: it keeps them
        ignored for good (an ignored signal stays ignored across exec) and
        so do the processes it forks. A SIGTERM or SIGHUP sent to the whole
        process group would otherwise end it, and then every process it
        forked looks dead (exit status 255) while it still runs. Blocking the
        signals is not enough here: starting the resource tracker on the way
        unblocks SIGINT and SIGTERM."""
        if self.config.supervisor.start_method != "forkserver":
            return
        previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in TREE_SIGNALS}
        try:
            forkserver.ensure_running()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- signals ----------------------------------------------------------

    def _install_signal_handlers(self):
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._wakeup = (reader, writer)
        self._previous_wakeup_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._previous_handlers = {
            signum: signal.signal(signum, self._record_signal)
            for signum in TREE_SIGNALS
        }

    def _record_signal(self, signum, frame):
        self.pending_signals.append(signum)

    def _restore_signal_handlers(self):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        for end in self._wakeup:
            end.close()

    def _drain_wakeup(self):
        try:
            while self._wakeup[0].recv(4096):
                pass
        except BlockingIOError:
            pass

    def _handle_signals(self):
        while self.pending_signals:
            signum = self.pending_signals.pop(0)
            if signum in STOP_SIGNALS:
                if self.stop_signal is None:
                    self.stop_signal = signum
                    self.begin_stop(f"stopping on {signal.Signals(signum).name}")
            elif signum == signal.SIGHUP and self.phase is SupervisorPhase.RUNNING:
                self._reload()

    # -- children ---------------------------------------------------------

    def _new_sensor(self, sensor):
        managed = ManagedSensor(sensor, self.config.supervisor, self._now,
                                launch=lambda: self._launch_worker(managed))
        return managed

    def _launch_worker(self, managed):
        """A new process for ``managed``; its heartbeat remembers how the
        last one failed to build, so the same failure again is one line."""
        sensor = managed.sensor
        heartbeat = self.launcher.heartbeat(previous=managed.heartbeat)
        stop_receiver, stop_sender = self.launcher.pipe()
        try:
            process = self.launcher.start(
                ChildEntry(f"sensor {sensor.name}", f"es:{sensor.name}", run_worker), f"sensor:{sensor.name}",
                args=(sensor,),
                kwargs=dict(pin_factory=self.config.gpio.pin_factory, sender=self.transport.sender,
                            stop=stop_receiver, heartbeat=heartbeat, log_level=self.config.logging.level),
            )
        except BaseException:
            stop_sender.close()
            raise
        finally:
            stop_receiver.close()
        return sensor_launched(process, heartbeat, stop_sender)

    def _new_publisher(self):
        return ManagedChild("publisher", publisher_policy(self.config.supervisor), self._launch_publisher,
                            self._now)

    def _launch_publisher(self):
        config = self.config
        stop_receiver, stop_sender = self.launcher.pipe()
        try:
            process = self.launcher.start(
                ChildEntry("publisher", "es:publisher", run_publisher), "publisher",
                args=(config.mqtt, config.sensors, config.logging.dir),
                kwargs=dict(sender=self.transport.sender, stop=stop_receiver, log_level=config.logging.level),
            )
        except BaseException:
            stop_sender.close()
            raise
        finally:
            stop_receiver.close()
        return Launched(process, ask_to_stop=lambda: _ask_through(stop_sender), release=stop_sender.close)

    def _launch_listener(self):
        up_since = self.launcher.moment()
        entry = ChildEntry("log-listener", "es:log-listener", run_listener, up_since=up_since)
        process = self.launcher.start(entry, "log-listener", args=(self.transport.receiver, self.config.logging))
        return Launched(process, ask_to_stop=self.transport.sender.send_stop,
                        is_up=lambda: bool(up_since.value), up_since=lambda: up_since.value)

    def _start_child(self, child):
        """Start a child's process and say so."""
        restarting = child.state in WAITING
        if not child.start():
            self._report_start_failure(child)
            return
        child.check_started()
        if child is self.listener:
            if restarting:
                self._listener_restarted()
        elif restarting:
            logger.info("%s: restarted as pid %d (restart %d)", child.title, child.pid, child.restarts)
        else:
            logger.info("%s: started as pid %d", child.title, child.pid)

    def _report_start_failure(self, child):
        message = f"{child.title}: cannot start its process: {child.last_exit}"
        if child is self.listener:
            print(f"edgesense: {message}", file=sys.stderr, flush=True)
        else:
            logger.error("%s", message)

    def _reap(self):
        for child in self._children():
            if child.sentinel is None or child.process.is_alive():
                continue
            cut_off = kill_cut_off_child(child.process)
            if child.state is ChildState.STOPPING:
                child.stopped()
            elif cut_off:
                child.cut_off()
                self._report_cut_off(child)
            else:
                child.exited()
                self._report_exit(child)

    def _report_cut_off(self, child):
        if child is self.listener:
            self._listener_ended()
        else:
            logger.error("%s: the fork server died; pid %d was cut off, killed, and starts again",
                         child.title, child.last_pid)

    def _report_exit(self, child):
        if child is self.listener:
            self._listener_ended()
        elif child.gave_up:
            self._give_up(child)
        elif child.state is ChildState.FAILED:
            logger.error(
                "%s: ended with %s; more than %d restarts in %.0f s, marked failed, retry in %.0f s",
                child.title, child.last_exit, child.policy.max_restarts,
                child.policy.restart_window, child.policy.failed_cooldown,
            )
        else:
            logger.error("%s: ended with %s; restart in %.1f s",
                         child.title, child.last_exit, child.next_start - self._now())

    def _give_up(self, child):
        """A child that cannot start stops the tree with exit status 1."""
        policy = child.policy
        message = (f"{child.title} cannot start: it ended within {policy.stable_after:g} s of its "
                   f"start {policy.max_quick_exits} times in a row (last: {child.last_exit}); "
                   "edgesense stops with exit status 1")
        if child is self.listener or not self.config.logging.console:
            print(f"edgesense: {message}", file=sys.stderr, flush=True)
        logger.critical("%s", message)
        self.begin_stop(f"stopping: {child.title} cannot start", exit_status=ExitStatus.FAILURE)

    def _run_timers(self):
        self._feed_watchdog()
        for child in self._children():
            if child.state in ALIVE:
                child.check_started()
                if isinstance(child, ManagedSensor):
                    child.check_hung()
            elif child.stop_overdue():
                self._kill_overdue(child)
            elif child.start_due():
                self._start_child(child)
        if self.listener.state is ChildState.STOPPED and not self.stopped_logged:
            self._start_child(self.listener)  # stopped for new [logging] settings

    def _kill_overdue(self, child):
        if child is self.listener:
            print(f"edgesense: log listener did not finish within {child.policy.stop_timeout:.0f} s; killing it",
                  file=sys.stderr, flush=True)
        else:
            logger.warning("%s: did not stop within %.1f s; killing pid %d",
                           child.title, child.policy.stop_timeout, child.pid)
        child.kill_at_deadline()

    # -- the listener -----------------------------------------------------

    def _listener_ended(self):
        """The listener cannot log its own death: say it on stderr, and in
        the log once a new listener runs."""
        listener = self.listener
        if listener.last_run_quick and self.logging_fallback is not None:
            self._fall_back_to_previous_logging()
        elif not listener.last_run_quick:
            self.logging_fallback = None
        if listener.gave_up:
            self._give_up(listener)
            return
        print(
            f"edgesense: log listener (pid {listener.last_pid}) {_how_it_ended(listener)}; "
            f"restarting it on the same socket in {max(0.0, listener.next_start - self._now()):.1f} s",
            file=sys.stderr, flush=True,
        )

    def _fall_back_to_previous_logging(self):
        """A listener that dies at once after a reload changed [logging]
        cannot use the new settings: go back to the ones that worked."""
        print(
            "edgesense: the reloaded [logging] settings do not work; going back to the previous ones",
            file=sys.stderr, flush=True,
        )
        self.config = dataclasses.replace(self.config, logging=self.logging_fallback)
        self.logging_fallback = None
        self.listener.restart_at_once()
        self.listener_reverted = True

    def _listener_restarted(self):
        listener = self.listener
        logger.warning("log listener (pid %d) %s; restarted as pid %d (restart %d)",
                       listener.last_pid, _how_it_ended(listener), listener.pid, listener.restarts)
        if self.listener_reverted:
            logger.error("the reloaded [logging] settings do not work; the previous ones are back in force")
            self.listener_reverted = False

    def _switch_logging(self, previous):
        """A new listener for new [logging] settings, started as soon as the
        running one has written what was sent to it; the previous settings
        come back if it cannot even start with them."""
        self.logging_fallback = previous
        self._configure_logging(self.transport.sender, self.config.logging.level)
        self.listener.request_stop()

    # -- timers -----------------------------------------------------------

    def _waitables(self):
        return [self._wakeup[0], *(c.sentinel for c in self._children() if c.sentinel is not None)]

    def _deadlines(self):
        yield self.next_watchdog
        yield self.next_refresh
        for child in self._children():
            yield child.next_deadline()

    def _timeout(self):
        deadlines = [d for d in self._deadlines() if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self._now())

    def _feed_watchdog(self):
        now = self._now()
        if self.next_watchdog is not None and now >= self.next_watchdog:
            self.notifier.watchdog()
            self.next_watchdog = now + self.notifier.watchdog_interval

    # -- reload -----------------------------------------------------------

    def _reload(self):
        path = self.config.path
        if path is None:
            logger.warning("SIGHUP: nothing to reload, this is the built-in demo (no config file)")
            return
        self.notifier.reloading()
        logger.info("SIGHUP: reloading %s", path)
        try:
            new = load_config(path)
        except ConfigError as error:
            logger.error("reload failed; the running configuration stays in force:")
            for line in error.errors:
                logger.error("  %s", line)
        except Exception:
            logger.exception("reload of %s failed; the running configuration stays in force", path)
        else:
            self._apply(new)
        self.notifier.ready()
        self._publish(force=True)

    def _apply(self, new):
        """Start added sensors, stop removed ones, restart changed ones and
        leave the others running. A new log level that changes what a worker
        sends (to or from DEBUG) restarts every sensor. Each sensor starts as
        soon as nothing it needs is still stopping (``_start_unblocked``): one
        that is slow to stop delays only the sensors that share its pins."""
        old = self.config
        if new.supervisor.start_method != old.supervisor.start_method:
            logger.warning("start_method changes take effect when edgesense restarts")
        new_sensors = {s.name: s for s in new.sensors}
        everything_changed = new.gpio != old.gpio or _sends_differently(new.logging, old.logging)
        removed = [m for name, m in self.sensors.items() if name not in new_sensors]
        changed = [
            m for name, m in self.sensors.items()
            if name in new_sensors and (new_sensors[name] != m.sensor or everything_changed)
        ]
        added = [name for name in new_sensors if name not in self.sensors]
        self.config = _keep_start_method(new, old)
        if new.logging != old.logging:
            self._switch_logging(old.logging)
        self._apply_policies()
        self._retire(removed + changed)
        fresh = {m.name: self._new_sensor(new_sensors[m.name]) for m in changed}
        fresh.update((name, self._new_sensor(new_sensors[name])) for name in added)
        self.sensors = {name: fresh.get(name) or self.sensors[name] for name in new_sensors}
        self.pending.extend(fresh.values())
        self._replace_publisher(old)
        self._start_unblocked()
        logger.info(
            "reloaded: added %s; removed %s; restarted %s; unchanged %d",
            _names(added), _names(m.name for m in removed), _names(m.name for m in changed),
            len(self.sensors) - len(added) - len(changed),
        )

    def _apply_policies(self):
        policy = sensor_policy(self.config.supervisor)
        for managed in [*self.sensors.values(), *self.retiring]:
            managed.policy = policy
        self.listener.policy = listener_policy(self.config.supervisor)
        for publisher in (self.publisher, self.outgoing_publisher):
            if publisher is not None:
                publisher.policy = publisher_policy(self.config.supervisor)

    def _replace_publisher(self, old):
        """A new ``[mqtt]`` table, log folder or set of sensors (their
        discovery) restarts the publisher; a table removed stops it. The new
        one starts once the old one has stopped (``_start_unblocked``)."""
        new = self.config
        unchanged = new.mqtt == old.mqtt and new.logging.dir == old.logging.dir and new.sensors == old.sensors
        if unchanged or (new.mqtt is None and self.publisher is None):
            return
        if self.publisher is not None:
            self.publisher.request_stop()
            if self.publisher.state is ChildState.STOPPING:
                self.outgoing_publisher = self.publisher
        self.publisher = self._new_publisher() if new.mqtt is not None else None

    def _retire(self, outgoing):
        """Ask the sensors a reload removes or replaces to stop; the loop
        waits for them while everything else goes on."""
        self.pending = [m for m in self.pending if m not in outgoing]
        for managed in outgoing:
            managed.request_stop()
            if managed.state is ChildState.STOPPING:
                self.retiring.append(managed)

    def _start_unblocked(self):
        """Start each new sensor of a reload once no sensor still stopping
        has its name or one of its pins, and a new publisher once the one it
        replaces has stopped."""
        publisher = self.publisher
        if (publisher is not None and publisher.state is ChildState.STOPPED and publisher.launched is None
                and self.outgoing_publisher is None):
            self._start_child(publisher)
        for fresh in list(self.pending):
            pins = _pins(fresh.sensor)
            if not any(m.name == fresh.name or pins & _pins(m.sensor) for m in self.retiring):
                self.pending.remove(fresh)
                self._start_child(fresh)

    # -- what the outside sees -------------------------------------------

    def _shown_sensors(self):
        """Each sensor of the config (the old one while it stops for a new
        one not yet started), then the removed ones still stopping."""
        stopping = {m.name: m for m in self.retiring}
        shown = [stopping.pop(name) if m.state is ChildState.STOPPED and name in stopping else m
                 for name, m in self.sensors.items()]
        return shown + list(stopping.values())

    def _publish(self, force=False):
        """Write the state file and systemd's STATUS when something changed,
        and refresh the last readings every STATE_REFRESH seconds."""
        now = self._now()
        readings = tuple(m.heartbeat.readings if m.heartbeat else 0 for m in self.sensors.values())
        changed = self.phase_changed or any(c.changed for c in self._children())
        refresh_due = self.next_refresh is not None and now >= self.next_refresh
        if not (force or changed or (refresh_due and readings != self.last_published_readings)):
            if refresh_due:
                self.next_refresh = now + STATE_REFRESH
            return
        self.last_published_readings = readings
        self.phase_changed = False
        for child in self._children():
            child.changed = False
        self.next_refresh = now + STATE_REFRESH if self.phase is SupervisorPhase.RUNNING else None
        self.notifier.status(self.status_line())
        self._write_state_file()

    def _write_state_file(self):
        """Write the state file; a failure (full disk) is logged once until
        a write succeeds again, not on every change."""
        path = self.config.supervisor.state_file
        try:
            write_state(path, self.state_document())
        except OSError as error:
            if not self.state_file_failing:
                logger.error("cannot write the state file %s: %s (edgesense status will be stale)", path, error)
            self.state_file_failing = True
            return
        if self.state_file_failing:
            logger.info("the state file %s is written again", path)
        self.state_file_failing = False

    def status_line(self):
        """A one-line summary, e.g. ``3/4 sensors running; door: backoff 8 s``."""
        if self.phase is not SupervisorPhase.RUNNING:
            return self.phase.value
        running = sum(m.state is ChildState.RUNNING for m in self.sensors.values())
        parts = [f"{running}/{len(self.sensors)} sensors running"]
        now = self._now()
        for managed in self._shown_sensors():
            if managed.state in WAITING:
                parts.append(f"{managed.name}: {managed.state.value} {max(0, managed.next_start - now):.0f} s")
            elif managed.state is ChildState.STOPPING:
                parts.append(f"{managed.name}: stopping")
        if self.listener.state not in ALIVE:
            parts.append("log listener down")
        if self.publisher is not None and self.publisher.state not in ALIVE:
            parts.append(f"publisher: {self.publisher.state.value}")
        return "; ".join(parts)

    def state_document(self):
        return {
            "supervisor": {
                "pid": os.getpid(),
                "started": self.started_wall,
                "state": self.phase.value,
                "config": str(self.config.path) if self.config.path else None,
                "start_method": self.config.supervisor.start_method,
                "updated": time.time(),
            },
            "listener": self.listener.summary(),
            **({"publisher": self._publisher_entry()} if self.publisher is not None else {}),
            "sensors": [m.summary() for m in self._shown_sensors()],
        }

    def _publisher_entry(self):
        """The publisher's entry: its process as the supervisor knows it, with
        what the publisher last saved of itself (connected, backlog, ...)."""
        said = publisher_status(self.config.logging.dir) or {}
        own = {key: said.get(key) for key in PUBLISHER_STATUS_FIELDS}
        own["connected"] = bool(own["connected"]) and self.publisher.state in ALIVE
        return {**own, **self.publisher.summary()}

    # -- last resort ------------------------------------------------------

    def _kill_leftovers(self):
        """On any way out, leave no process of the tree behind, the start
        method's helpers included: the fork server and the resource tracker
        end by themselves once the tree is gone, and are waited for here so
        that none outlives the supervisor."""
        for process in multiprocessing.active_children():
            process.kill()
            process.join()
        for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
            try:
                helper._stop()
            except (AttributeError, OSError):
                pass


def _how_it_ended(child):
    return "was cut off (the fork server died)" if child.was_cut_off else f"ended with {child.last_exit}"


def _sends_differently(new, old):
    """Whether a worker sends other records under the ``[logging]``
    settings ``new`` than under ``old``."""
    return sending_level(new.level) != sending_level(old.level)


def _keep_start_method(new, old):
    supervisor = dataclasses.replace(new.supervisor, start_method=old.supervisor.start_method)
    return dataclasses.replace(new, supervisor=supervisor)


def _pins(sensor):
    return set(pins.pins_of(sensor.type, sensor.options))


def _names(names):
    names = list(names)
    return ", ".join(names) if names else "none"


def _ask_through(stop_sender):
    try:
        stop_sender.send_bytes(b"stop")
    except OSError:
        pass  # the child is gone already

"""The supervisor: starts the tree in order, keeps every sensor running,
and stops the tree without losing a log line.

    edgesense run                  supervisor (MainProcess)
     ├─ log-listener               owns every output handler
     └─ sensor:<name>   × N        one per [[sensor]]

Signal handlers only record the signal; the main loop acts on it. The loop
blocks on the children's sentinels, a signal wake-up socket and the next
timer, so an idle tree does not wake on a fixed short period.
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

from app.config import ConfigError, load_config
from app.heartbeat import Heartbeat
from app.notify import Notifier
from app.process import ALIVE, ManagedSensor, describe_exit
from app.statefile import write_state
from app.states import SensorState
from app.worker import run_worker
from logging_setup import LogTransport, configure_process, run_listener
from logging_setup.signals import TREE_SIGNALS
from sensors import pins, registry

logger = logging.getLogger(__name__)


FORKSERVER_PRELOAD = [
    "app.worker",
    *sorted({path.partition(":")[0] for path in registry.BUILTIN_TYPES.values()}),
    "importlib.metadata",
    "multiprocessing.sharedctypes",
]
"""Imported once by the fork server so that workers share those pages:
the worker, every built-in sensor module (gpiozero with them), what
gpiozero uses to find its pin factories, and what the heartbeat's shared
memory needs. Importing gpiozero is fine; creating a pin factory there is
not (lgpio would start a thread and open a FIFO that every forked worker
then finds busy)."""

LISTENER_DRAIN_TIMEOUT = 10.0
"""Seconds the listener may take to write what was sent before its stop."""

REAP_TIMEOUT = 2.0
"""Seconds to wait for a child whose sentinel is ready to be reaped: the
sentinel fires when the child closes its end, a moment before it exits."""

LISTENER_QUICK_DEATH = 1.0
"""A listener that dies sooner than this after its start is restarted
after a growing delay instead of at once."""

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


def run_service(config):
    """Run the tree until SIGTERM or SIGINT; return the exit status (0)."""
    return Supervisor(config).run()


class Supervisor:
    """The main process of ``edgesense run``: owns the log socket, the
    listener and one ManagedSensor per sensor, and the only loop that acts
    on signals. ``environ`` and ``now`` are passed in so that tests can give
    it a fake systemd and a fake clock."""

    def __init__(self, config, environ=os.environ, now=time.monotonic):
        self.config = config
        self._now = now
        self.ctx = multiprocessing.get_context(config.supervisor.start_method)
        if config.supervisor.start_method == "forkserver":
            self.ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        self.notifier = Notifier(environ)
        self.sensors = {s.name: ManagedSensor(s, config.supervisor, now) for s in config.sensors}
        self.transport = None
        self.listener = None
        self.listener_restarts = 0
        self.listener_started_at = None
        self.listener_delay = 0.0
        self.listener_next_start = None
        self.listener_changed = True
        self.listener_last_exit = None
        self.logging_fallback = None
        self.listener_reverted = False
        self.started_wall = time.time()
        self.phase = "starting"
        self.pending_signals = []
        self.stop_signal = None
        self.next_watchdog = None
        self.next_refresh = None
        self.last_published_readings = None
        self.state_file_failing = False
        self._wakeup = None

    # -- the life of the tree -------------------------------------------

    def run(self):
        self._start_fork_server()
        self._install_signal_handlers()
        try:
            self._start()
            self._loop()
            self._stop()
        finally:
            self._kill_leftovers()
            self._restore_signal_handlers()
            self.notifier.close()
            if self.transport is not None:
                self.transport.close()
        return 0

    def _start(self):
        self.transport = LogTransport.create()
        self._start_listener()
        configure_process(self.transport.sender, self.config.logging.level)
        logger.info(
            "edgesense starting: %d sensor(s), start method %s, logs in %s",
            len(self.sensors), self.config.supervisor.start_method, self.config.logging.dir,
        )
        for managed in self.sensors.values():
            self._start_worker(managed)
        self.phase = "running"
        self.notifier.ready()
        if self.notifier.watchdog_interval:
            self.next_watchdog = self._now()
        self._publish(force=True)

    def _loop(self):
        while True:
            self._handle_signals()
            if self.stop_signal is not None:
                return
            ready = connection.wait(self._waitables(), self._timeout())
            if self._wakeup[0] in ready:
                self._drain_wakeup()
            self._reap()
            self._run_timers()
            self._publish()

    def _stop(self):
        self.phase = "stopping"
        self.notifier.stopping()
        logger.info("stopping on %s", signal.Signals(self.stop_signal).name)
        self._publish(force=True)
        self._stop_workers(list(self.sensors.values()))
        self.phase = "stopped"
        logger.info("edgesense stopped")
        self._stop_listener()
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
            elif signum == signal.SIGHUP and self.stop_signal is None:
                self._reload()

    # -- workers ----------------------------------------------------------

    def _start_worker(self, managed):
        heartbeat = Heartbeat.create(self.ctx)
        stop_receiver, stop_sender = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(
            target=run_worker,
            name=f"sensor:{managed.name}",
            args=(managed.sensor,),
            kwargs=dict(
                pin_factory=self.config.gpio.pin_factory,
                sender=self.transport.sender,
                stop=stop_receiver,
                heartbeat=heartbeat,
                log_level=self.config.logging.level,
            ),
            daemon=True,
        )
        restarting = managed.state in (SensorState.BACKOFF, SensorState.FAILED)
        try:
            with tree_signals_blocked():
                process.start()
        except OSError as error:
            stop_receiver.close()
            stop_sender.close()
            logger.error("sensor %s: cannot start its process: %s", managed.name, error)
            managed.start_failed()
            return
        stop_receiver.close()
        managed.attach(process, heartbeat, stop_sender)
        if restarting:
            logger.info("sensor %s: restarted as pid %d (restart %d)", managed.name, process.pid, managed.restarts)
        else:
            logger.info("sensor %s: started as pid %d", managed.name, process.pid)

    def _reap(self):
        if self.listener is not None and not self.listener.is_alive():
            self._listener_died()
        for managed in self.sensors.values():
            if managed.state in ALIVE and not managed.process.is_alive():
                if kill_cut_off_child(managed.process):
                    managed.cut_off()
                    logger.error("sensor %s: the fork server died; pid %d was cut off, killed, and starts again",
                                 managed.name, managed.pid)
                    continue
                managed.exited()
                self._log_exit(managed)

    def _log_exit(self, managed):
        if managed.state is SensorState.FAILED:
            logger.error(
                "sensor %s: ended with %s; more than %d restarts in %.0f s, marked failed, retry in %.0f s",
                managed.name, managed.last_exit, managed.policy.max_restarts,
                managed.policy.restart_window, managed.policy.failed_cooldown,
            )
        else:
            logger.error(
                "sensor %s: ended with %s; restart in %.1f s",
                managed.name, managed.last_exit, managed.next_start - self._now(),
            )

    def _stop_workers(self, managed_sensors, then=lambda managed: None):
        """Ask each to stop, wait up to stop_timeout, then kill what is left;
        ``then(managed)`` runs as soon as each one has stopped."""
        for managed in managed_sensors:
            managed.request_stop()
        for managed in managed_sensors:
            if managed.state is SensorState.STOPPED:
                then(managed)
        stopping = [m for m in managed_sensors if m.state is SensorState.STOPPING]
        deadline = self._now() + self.config.supervisor.stop_timeout
        while stopping:
            remaining = deadline - self._now()
            if remaining <= 0:
                break
            ready = self._wait_feeding_watchdog([m.process.sentinel for m in stopping], remaining)
            for managed in [m for m in stopping if m.process.sentinel in ready]:
                managed.process.join(REAP_TIMEOUT)
                if not managed.process.is_alive():
                    managed.stopped()
                    stopping.remove(managed)
                    then(managed)
        for managed in stopping:
            logger.warning(
                "sensor %s: did not stop within %.1f s; killing pid %d",
                managed.name, self.config.supervisor.stop_timeout, managed.pid,
            )
            managed.kill()
            managed.stopped()
            then(managed)

    # -- the listener -----------------------------------------------------

    def _start_listener(self):
        self.listener = self.ctx.Process(
            target=run_listener,
            name="log-listener",
            args=(self.transport.receiver, self.config.logging),
            daemon=True,
        )
        with tree_signals_blocked():
            self.listener.start()
        self.listener_started_at = self._now()
        self.listener_next_start = None
        self.listener_changed = True

    def _listener_died(self):
        self.listener.join()
        pid = self.listener.pid
        if kill_cut_off_child(self.listener):
            how = "a cut-off (the fork server died)"
        else:
            how = describe_exit(self.listener.exitcode)
        self.listener_last_exit = (pid, how)
        self.listener = None
        self.listener_restarts += 1
        self.listener_changed = True
        quick = self._now() - self.listener_started_at < LISTENER_QUICK_DEATH
        if quick and self.logging_fallback is not None:
            self._fall_back_to_previous_logging()
        elif quick:
            self.listener_delay = min(max(2 * self.listener_delay, 0.5), self.config.supervisor.backoff_max)
        else:
            self.listener_delay = 0.0
            self.logging_fallback = None
        print(
            f"edgesense: log listener (pid {pid}) ended with {how}; "
            f"restarting it on the same socket in {self.listener_delay:.1f} s",
            file=sys.stderr, flush=True,
        )
        self.listener_next_start = self._now() + self.listener_delay
        if self.listener_delay == 0:
            self._restart_listener()

    def _fall_back_to_previous_logging(self):
        """A listener that dies at once after a reload changed [logging]
        cannot use the new settings: go back to the ones that worked."""
        print(
            "edgesense: the reloaded [logging] settings do not work; going back to the previous ones",
            file=sys.stderr, flush=True,
        )
        self.config = dataclasses.replace(self.config, logging=self.logging_fallback)
        self.logging_fallback = None
        self.listener_delay = 0.0
        self.listener_reverted = True

    def _restart_listener(self):
        pid, how = self.listener_last_exit
        self._start_listener()
        logger.warning(
            "log listener (pid %d) ended with %s; restarted as pid %d (restart %d)",
            pid, how, self.listener.pid, self.listener_restarts,
        )
        if self.listener_reverted:
            logger.error("the reloaded [logging] settings do not work; the previous ones are back in force")
            self.listener_reverted = False

    def _stop_listener(self):
        """Send the stop sentinel after everything else, and wait while the
        listener writes what was sent before it."""
        if self.listener is None or not self.listener.is_alive():
            self._start_listener()
        self.transport.sender.send_stop()
        if self._wait_feeding_watchdog([self.listener.sentinel], LISTENER_DRAIN_TIMEOUT):
            self.listener.join(REAP_TIMEOUT)
        if self.listener.is_alive():
            print(
                f"edgesense: log listener did not finish within {LISTENER_DRAIN_TIMEOUT:.0f} s; killing it",
                file=sys.stderr, flush=True,
            )
            self.listener.kill()
        self.listener.join()
        self.listener = None
        self.listener_changed = True

    # -- timers -----------------------------------------------------------

    def _waitables(self):
        waitables = [self._wakeup[0]]
        if self.listener is not None:
            waitables.append(self.listener.sentinel)
        waitables.extend(m.sentinel for m in self.sensors.values() if m.state in ALIVE)
        return waitables

    def _deadlines(self):
        yield self.listener_next_start
        yield self.next_watchdog
        yield self.next_refresh
        for managed in self.sensors.values():
            yield managed.next_deadline()

    def _timeout(self):
        deadlines = [d for d in self._deadlines() if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self._now())

    def _run_timers(self):
        now = self._now()
        if self.listener_next_start is not None and now >= self.listener_next_start and self.listener is None:
            self._restart_listener()
        self._feed_watchdog()
        for managed in self.sensors.values():
            if managed.state in (SensorState.BACKOFF, SensorState.FAILED) and now >= managed.next_start:
                self._start_worker(managed)
            elif managed.state in ALIVE:
                managed.check_started()
                managed.check_hung()

    def _feed_watchdog(self):
        now = self._now()
        if self.next_watchdog is not None and now >= self.next_watchdog:
            self.notifier.watchdog()
            self.next_watchdog = now + self.notifier.watchdog_interval

    def _wait_feeding_watchdog(self, handles, timeout):
        """connection.wait for up to ``timeout`` seconds that keeps systemd's
        watchdog fed meanwhile, for the waits of a stop or a reload."""
        deadline = self._now() + timeout
        while True:
            self._feed_watchdog()
            remaining = deadline - self._now()
            if remaining <= 0:
                return []
            if self.next_watchdog is not None:
                remaining = min(remaining, max(0.0, self.next_watchdog - self._now()))
            ready = connection.wait(handles, remaining)
            if ready:
                return ready

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
        leave the others running. A new log level reaches every process, so
        it restarts every sensor. Each sensor starts as soon as nothing it
        needs is still stopping: one that is slow to stop delays only the
        sensors that share its pins."""
        old = self.config
        if new.supervisor.start_method != old.supervisor.start_method:
            logger.warning("start_method changes take effect when edgesense restarts")
        new_sensors = {s.name: s for s in new.sensors}
        everything_changed = new.gpio != old.gpio or new.logging.level != old.logging.level
        removed = [m for name, m in self.sensors.items() if name not in new_sensors]
        changed = [
            m for name, m in self.sensors.items()
            if name in new_sensors and (new_sensors[name] != m.sensor or everything_changed)
        ]
        added = [name for name in new_sensors if name not in self.sensors]
        self.config = _keep_start_method(new, old)
        if new.logging != old.logging:
            self._switch_logging(old.logging)
        for managed in self.sensors.values():
            managed.policy = self.config.supervisor
        fresh = {
            name: ManagedSensor(new_sensors[name], self.config.supervisor, self._now)
            for name in [*(m.name for m in changed), *added]
        }
        busy_pins = {pin for m in removed + changed for pin in _pins(m.sensor)}
        waiting_for_pins = [name for name in added if busy_pins & _pins(new_sensors[name])]
        for name in added:
            if name not in waiting_for_pins:
                self._start_worker(fresh[name])

        def start_replacement(managed):
            if managed.name in fresh:
                self._start_worker(fresh[managed.name])

        self._stop_workers(removed + changed, then=start_replacement)
        for name in waiting_for_pins:
            self._start_worker(fresh[name])
        self.sensors = {name: fresh.get(name) or self.sensors[name] for name in new_sensors}
        logger.info(
            "reloaded: added %s; removed %s; restarted %s; unchanged %d",
            _names(added), _names(m.name for m in removed), _names(m.name for m in changed),
            len(self.sensors) - len(added) - len(changed),
        )

    def _switch_logging(self, previous):
        """A new listener for new [logging] settings; the previous settings
        come back if it cannot even start with them."""
        self._stop_listener()
        self.logging_fallback = previous
        configure_process(self.transport.sender, self.config.logging.level)
        self._start_listener()

    # -- what the outside sees -------------------------------------------

    def _publish(self, force=False):
        """Write the state file and systemd's STATUS when something changed,
        and refresh the last readings every STATE_REFRESH seconds."""
        now = self._now()
        readings = tuple(m.heartbeat.readings if m.heartbeat else 0 for m in self.sensors.values())
        changed = self.listener_changed or any(m.changed for m in self.sensors.values())
        refresh_due = self.next_refresh is not None and now >= self.next_refresh
        if not (force or changed or (refresh_due and readings != self.last_published_readings)):
            if refresh_due:
                self.next_refresh = now + STATE_REFRESH
            return
        self.last_published_readings = readings
        self.listener_changed = False
        for managed in self.sensors.values():
            managed.changed = False
        self.next_refresh = now + STATE_REFRESH if self.phase == "running" else None
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
        if self.phase != "running":
            return self.phase
        running = sum(m.state is SensorState.RUNNING for m in self.sensors.values())
        parts = [f"{running}/{len(self.sensors)} sensors running"]
        now = self._now()
        for managed in self.sensors.values():
            if managed.state in (SensorState.BACKOFF, SensorState.FAILED):
                parts.append(f"{managed.name}: {managed.state.value} {max(0, managed.next_start - now):.0f} s")
        if self.listener is None:
            parts.append("log listener down")
        return "; ".join(parts)

    def state_document(self):
        return {
            "supervisor": {
                "pid": os.getpid(),
                "started": self.started_wall,
                "state": self.phase,
                "config": str(self.config.path) if self.config.path else None,
                "start_method": self.config.supervisor.start_method,
                "updated": time.time(),
            },
            "listener": {
                "pid": self.listener.pid if self.listener is not None else None,
                "restarts": self.listener_restarts,
            },
            "sensors": [m.summary() for m in self.sensors.values()],
        }

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


def _keep_start_method(new, old):
    supervisor = dataclasses.replace(new.supervisor, start_method=old.supervisor.start_method)
    return dataclasses.replace(new, supervisor=supervisor)


def _pins(sensor):
    return set(pins.pins_of(sensor.type, sensor.options))


def _names(names):
    names = list(names)
    return ", ".join(names) if names else "none"

"""The edgesense command line: ``run``, ``check``, ``init``, ``status``, ``logs``.

Every command returns an ``ExitStatus``. Bad input (a bad command line, a bad
config file) is one line per problem on stderr and exit status 2, never a
traceback. ``main`` reaches the outside world (streams, environment
variables, working folder, clock) only through its ``Environment``.
"""

import argparse
import functools
import json
import os
from pathlib import Path

from app import demo
from app.budget import budget_warnings
from app.backlog import publisher_status
from app.cli_environment import Environment
from app.config import (LEVELS, SEARCH_PATHS, ConfigError, find_config, load_config, load_paths,
                        paths_from_dict, read_toml)
from app.config_file import absolute_path
from app.exit_status import ExitStatus
from app.logview import RecordFilter, same_sensor_name, sensor_names, show_logs
from app.mqtt_settings import describe_mqtt, missing_client_library
from app.paths import ServiceUser, judgement_notes
from app.service_unit import unit_for_config
from app.statusview import (StateFileError, describe_state, latest_readings, read_state,
                            with_latest_readings, with_publisher_status)
from app.treelock import lock_path
from sensors import pins, registry
from sensors.problems import did_you_mean, render

DEFAULT_INIT_PATH = "edgesense.toml"


def main(argv=None, env=None):
    """Entry point of ``edgesense`` and ``python -m app``: run the command of
    ``argv`` (default: this process's arguments) in ``env`` (default: this
    process's world); its exit status."""
    env = Environment() if env is None else env
    parser = build_parser(env)
    try:
        args = parser.parse_args(argv)
    except _ParserExit as done:
        return done.status
    if args.version:
        print(f"edgesense {version()}", file=env.stdout)
        return ExitStatus.OK
    if args.command is None:
        parser.print_help(env.stderr)
        return ExitStatus.USAGE
    try:
        return args.handler(args, env)
    except ConfigError as error:
        for line in error.errors:
            print(line, file=env.stderr)
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        _silence(env.stdout)
        return ExitStatus.OK


def version():
    """The installed version of edgesense."""
    from importlib import metadata  # only here: it costs every other command a tenth of its start-up

    try:
        return metadata.version("edgesense")
    except metadata.PackageNotFoundError:
        return "(version unknown: run from a source tree that is not installed)"


class _ParserExit(Exception):
    """argparse is done (``--help``, a bad command line): return ``status``."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that writes to the environment's streams and returns
    instead of exiting the process."""

    def __init__(self, *args, env, **kwargs):
        super().__init__(*args, **kwargs)
        self.env = env

    def print_usage(self, file=None):
        super().print_usage(self.env.stdout if file is None else file)

    def print_help(self, file=None):
        super().print_help(self.env.stdout if file is None else file)

    def exit(self, status=0, message=None):
        if message:
            self.env.stderr.write(message)
        raise _ParserExit(status)

    def error(self, message):
        self.print_usage(self.env.stderr)
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message}\n")


def build_parser(env):
    parser = _Parser(
        env=env,
        prog="edgesense",
        description="A forever-running sensor node: one process per sensor, "
                    "rotated logs in a fixed budget, a supervisor that restarts what fails.",
        epilog="Config lookup without --config: $EDGESENSE_CONFIG, ./edgesense.toml, "
               "/etc/edgesense/config.toml; none found: `run` runs the built-in demo.",
    )
    parser.set_defaults(command=None)
    parser.add_argument("--version", action="store_true", help="print the version of edgesense and exit")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND",
                                     parser_class=functools.partial(_Parser, env=env))

    run = _command(commands, "run", cmd_run, "run the service in the foreground "
                   "(the built-in demo when no config is found)")
    _config_option(run)

    check = _command(commands, "check", cmd_check, "validate a config: exit 0, or 2 with the errors")
    _config_option(check)

    init = _command(commands, "init", cmd_init, "write a commented example config")
    init.add_argument("path", nargs="?", default=DEFAULT_INIT_PATH,
                      help=f"where to write it (default: ./{DEFAULT_INIT_PATH}, found by `run`)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    status = _command(commands, "status", cmd_status,
                      "show the running sensors (exit 0 when running, 1 when not)")
    _config_option(status)
    status.add_argument("--json", action="store_true", help="print the state file as it is")

    logs = _command(commands, "logs", cmd_logs,
                    "print or follow the log, across rotated and compressed files")
    _config_option(logs)
    logs.add_argument("-n", "--lines", type=_count, default=20, metavar="N",
                      help="how many records to print (default: 20)")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="then print new records as they come, across rotations (Ctrl-C stops)")
    logs.add_argument("--sensor", metavar="NAME", help="only the records of this sensor")
    logs.add_argument("--level", type=str.upper, choices=LEVELS, metavar="LEVEL",
                      help=f"only records at this level or above ({', '.join(LEVELS)})")
    logs.add_argument("--readings", action="store_true",
                      help="print readings.jsonl (one JSON reading a line) instead")
    return parser


def _command(commands, name, handler, summary):
    command = commands.add_parser(name, help=summary, description=summary)
    command.set_defaults(command=name, handler=handler)
    return command


def _config_option(command):
    command.add_argument("--config", "-c", metavar="PATH",
                         help="the config file (default: $EDGESENSE_CONFIG, ./edgesense.toml, "
                              "/etc/edgesense/config.toml)")


def _count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _config_path(args, env):
    """The config named by --config, else found by lookup, as typed (None:
    there is none, which means the demo's)."""
    return args.config or find_config(env.environ, env.cwd)


def _config_or_demo(args, env):
    """The config named by --config or found by lookup, else the demo's."""
    path = _config_path(args, env)
    if path is None:
        return demo.demo_config(), True
    return load_config(path, cwd=env.cwd), False


def _service_paths(args, env):
    """The log folder and state file of the config named by --config or
    found by lookup (else the demo's), read without validating the rest."""
    path = _config_path(args, env)
    if path is None:
        return paths_from_dict(demo.demo_settings(), base_dir=env.cwd, source=demo.SOURCE)
    return load_paths(path, cwd=env.cwd)


def cmd_run(args, env):
    config, is_demo = _config_or_demo(args, env)
    if is_demo:
        print(demo.BANNER, file=env.stderr, flush=True)
    from app.supervisor import run_service  # the service's imports, only when it runs

    return run_service(config)


def cmd_check(args, env):
    path = _config_path(args, env)
    if path is None:
        print("edgesense: no config file found (looked for $EDGESENSE_CONFIG, "
              f"{', '.join(SEARCH_PATHS)}); write one with `edgesense init`", file=env.stderr)
        return ExitStatus.USAGE
    unit = unit_for_config(absolute_path(path, env.cwd))
    service_user = _service_user(path, env, unit)
    config = load_config(path, cwd=env.cwd, service_user=service_user)
    for warning in (_gpio_warning(config), _network_warning(config, unit), _client_warning(config, unit)):
        if warning:
            print(f"edgesense: warning: {warning}", file=env.stderr)
    print("\n".join(summary(config, name=path) + folder_notes(config, service_user)
                    + [f"  {line}" for line in budget_warnings(config.logging, config.sensors)]),
          file=env.stdout)
    return ExitStatus.OK


def _service_user(path, env, unit):
    """Who will write the config's folders when that is not this process:
    the User= of ``unit``, the installed unit that runs this config (or
    None), else (for a user other than root) the owner of an existing log
    folder."""
    if unit is not None:
        return ServiceUser.from_unit(unit)
    try:
        log_dir = load_paths(path, cwd=env.cwd).log_dir
    except ConfigError:
        return None  # load_config reports it with everything else
    try:
        if os.geteuid() != 0 and log_dir.is_dir() and log_dir.stat().st_uid != os.geteuid():
            return ServiceUser.owner_of(log_dir)
    except OSError:
        pass
    return None


def folder_notes(config, service_user):
    """For whom the folders were judged, and what could not be judged."""
    if service_user is None:
        return []
    folders = [config.logging.dir, config.supervisor.state_file.parent]
    return ([f"  folders judged for user {service_user.name} ({service_user.why})"]
            + [f"  note: {note}" for note in judgement_notes(dict.fromkeys(folders), service_user)])


def _gpio_warning(config):
    """Why the sensors that need pins could not get them on this machine,
    or None (also when no sensor needs pins)."""
    needing = [sensor.name for sensor in config.sensors
               if registry.uses_gpio(registry.resolve(sensor.type))]
    problem = needing and pins.factory_problem(config.gpio.pin_factory)
    if not problem:
        return None
    noun = "sensor" if len(needing) == 1 else "sensors"
    return f"{noun} {', '.join(needing)} need{'s' if len(needing) == 1 else ''} GPIO pins, but {problem}"


def _client_warning(config, unit):
    """Why the publisher of the config's [mqtt] cannot start on this Python
    (paho-mqtt missing) and how to install it, or None."""
    return missing_client_library(by_install_sh=unit is not None) if config.mqtt is not None else None


def _network_warning(config, unit):
    """Why the publisher of the config's [mqtt] cannot reach its broker
    under ``unit`` (the installed unit that runs the config, or None), and
    how to open the network; None when there is no [mqtt], no such unit, or
    its sandbox lets the service reach an IP address. The sandbox is set up
    when the service starts: a reload cannot change it."""
    if config.mqtt is None or unit is None or not unit.network_closed_by:
        return None
    drop_in = unit.path.parent / f"{unit.path.name}.d" / "network.conf"
    return (f"[mqtt] is set, but the service has no network to reach {config.mqtt.broker} "
            f"({', '.join(unit.network_closed_by)} in {unit.path} and its drop-ins): "
            f"re-run install.sh, which adds the drop-in {drop_in} for a config with [mqtt] "
            "(or put PrivateNetwork=no, RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 and "
            "IPAddressDeny= in one: sudo systemctl edit edgesense), then "
            "sudo systemctl restart edgesense; a reload does not change the sandbox")


def summary(config, name=None):
    """A few lines on what the config will do; the first names the config
    as ``name`` (default: its absolute path)."""
    log = config.logging
    lines = [
        f"{config.path if name is None else name}: OK",
        f"  logs: {log.dir} (level {log.level}), at most {_size(log.max_total_bytes)} in "
        f"{_size(log.max_file_bytes)} files{', compressed' if log.compress else ''}",
        f"  state file: {config.supervisor.state_file}",
        f"  start method: {config.supervisor.start_method}; "
        f"pin factory: {config.gpio.pin_factory or 'default'}",
        f"  {len(config.sensors)} sensor{'s' if len(config.sensors) != 1 else ''}:",
    ]
    width = max(len(sensor.name) for sensor in config.sensors)
    type_width = max(len(sensor.type) for sensor in config.sensors)
    for sensor in config.sensors:
        details = [f"every {sensor.interval:g} s"]
        details += [f"{key} {json.dumps(value)}" for key, value in sensor.options.items()]
        if sensor.warn_above is not None:
            details.append(f"warn above {sensor.warn_above:g}")
        if sensor.warn_below is not None:
            details.append(f"warn below {sensor.warn_below:g}")
        lines.append(f"    {sensor.name.ljust(width)}  {sensor.type.ljust(type_width)}  "
                     + ", ".join(details))
    if config.mqtt is not None:
        lines += describe_mqtt(config.mqtt)
    return lines


def _size(size):
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


def cmd_init(args, env):
    path = Path(args.path)
    file = env.path(path)
    if file.is_dir():
        print(f"edgesense: {path} is a folder; give a file name such as {path / DEFAULT_INIT_PATH}",
              file=env.stderr)
        return ExitStatus.USAGE
    if not file.parent.is_dir():
        print(f"edgesense: cannot write {path}: there is no folder {path.parent} "
              "(init does not create folders)", file=env.stderr)
        return ExitStatus.USAGE
    if file.exists() and not args.force:
        print(f"edgesense: {path} exists; not overwritten (use --force)", file=env.stderr)
        return ExitStatus.USAGE
    from importlib import resources

    example = resources.files("app").joinpath("config.example.toml").read_text(encoding="utf-8")
    try:
        file.write_text(example, encoding="utf-8")
    except OSError as error:
        print(f"edgesense: cannot write {path}: {error.strerror or error}", file=env.stderr)
        return ExitStatus.FAILURE
    is_found_by_run = file.resolve() == env.path(DEFAULT_INIT_PATH).resolve()
    config_option = "" if is_found_by_run else f" --config {path}"
    print(f"wrote {path}; edit it, then `edgesense check{config_option}` "
          f"and `edgesense run{config_option}`", file=env.stdout)
    return ExitStatus.OK


def cmd_status(args, env):
    paths = _service_paths(args, env)
    try:
        text, state = read_state(paths.state_file)
    except StateFileError as error:
        print(error, file=env.stderr)
        return ExitStatus.FAILURE
    state = with_publisher_status(state, publisher_status(paths.log_dir))
    state = with_latest_readings(state, latest_readings(paths.log_dir))
    lines, running = describe_state(state, now=env.clock(), lock_file=lock_path(paths.state_file))
    if args.json:
        env.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        print("\n".join(lines), file=env.stdout)
    return ExitStatus.OK if running else ExitStatus.FAILURE


def cmd_logs(args, env):
    if args.readings and args.level:
        print("edgesense: --level does not apply to --readings", file=env.stderr)
        return ExitStatus.USAGE
    directory = _service_paths(args, env).log_dir
    record_filter = RecordFilter(sensor=args.sensor, level=args.level, readings=args.readings)
    try:
        unknown = args.sensor is not None and _unknown_sensor(args, env, directory, record_filter)
        if unknown:
            print(unknown, file=env.stderr)
            return ExitStatus.USAGE
        if not directory.is_dir():
            print(f"edgesense: no log folder at {directory} "
                  "(edgesense has not run with this config yet)", file=env.stderr)
            return ExitStatus.FAILURE
        readable = show_logs(directory, count=args.lines, record_filter=record_filter,
                             follow=args.follow, out=env.stdout, err=env.stderr)
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            raise
        print(f"edgesense: cannot read {error.filename or directory}: {error.strerror or error}",
              file=env.stderr)
        return ExitStatus.FAILURE
    return ExitStatus.OK if readable else ExitStatus.FAILURE


def _unknown_sensor(args, env, directory, record_filter):
    """The one-line error when --sensor names no sensor of the config and
    none of the log (ignoring case), with a did-you-mean; else None."""
    path = _config_path(args, env)
    configured = _configured_sensor_names(path, env)
    if any(same_sensor_name(name, args.sensor) for name in configured):
        return None
    logged = sensor_names(directory, record_filter) if directory.is_dir() else set()
    if any(same_sensor_name(name, args.sensor) for name in logged):
        return None
    where = f"the {demo.SOURCE}" if path is None else path
    return (f"edgesense: no sensor named {render(args.sensor)} in {where} or in its log"
            + did_you_mean(args.sensor, sorted({*configured, *logged})))


def _configured_sensor_names(path, env):
    """The names of the [[sensor]] sections of the config at ``path`` (the
    demo's when None), read without validating the rest."""
    data = demo.demo_settings() if path is None else read_toml(path, cwd=env.cwd)
    sections = data.get("sensor")
    if not isinstance(sections, list):
        return []
    return [section["name"] for section in sections
            if isinstance(section, dict) and isinstance(section.get("name"), str)]


def _silence(stdout):
    """After the reader of a pipe went away (``| head``), let the interpreter
    exit without a second BrokenPipeError while flushing stdout."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stdout.fileno())

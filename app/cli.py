"""The edgesense command line: ``run``, ``check``, ``init``, ``status``, ``logs``.

Every command returns an ``ExitStatus``. Bad input (a bad command line, a bad
config file) is one line per problem on stderr and exit status 2, never a
traceback.
"""

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path

from app import demo
from app.config import (LEVELS, SEARCH_PATHS, ConfigError, find_config, load_config, load_paths,
                        paths_from_dict)
from app.budget import budget_warnings
from app.exit_status import ExitStatus
from app.paths import ServiceUser, judgement_notes
from app.service_unit import unit_for_config
from app.logview import RecordFilter, show_logs
from app.statusview import (StateFileError, describe_state, latest_readings, read_state,
                            with_latest_readings)

DEFAULT_INIT_PATH = "edgesense.toml"


def main(argv=None):
    """Entry point of ``edgesense`` and ``python -m app``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return ExitStatus.USAGE
    try:
        return args.handler(args)
    except ConfigError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return ExitStatus.OK


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edgesense",
        description="A forever-running sensor node: one process per sensor, "
                    "rotated logs in a fixed budget, a supervisor that restarts what fails.",
        epilog="Config lookup without --config: $EDGESENSE_CONFIG, ./edgesense.toml, "
               "/etc/edgesense/config.toml; none found: `run` runs the built-in demo.",
    )
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

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
    command.add_argument("--config", "-c", metavar="PATH", type=Path,
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


def _config_or_demo(args):
    """The config named by --config or found by lookup, else the demo's."""
    path = args.config or find_config()
    if path is None:
        return demo.demo_config(), True
    return load_config(path), False


def _service_paths(args):
    """The log folder and state file of the config named by --config or
    found by lookup (else the demo's), read without validating the rest."""
    path = args.config or find_config()
    if path is None:
        return paths_from_dict(demo.demo_settings(), base_dir=Path.cwd(), source=demo.SOURCE)
    return load_paths(path)


def cmd_run(args):
    config, is_demo = _config_or_demo(args)
    if is_demo:
        print(demo.BANNER, file=sys.stderr, flush=True)
    from app.supervisor import run_service  # the service's imports, only when it runs

    return run_service(config)


def cmd_check(args):
    path = args.config or find_config()
    if path is None:
        print("edgesense: no config file found (looked for $EDGESENSE_CONFIG, "
              f"{', '.join(SEARCH_PATHS)}); write one with `edgesense init`", file=sys.stderr)
        return ExitStatus.USAGE
    service_user = _service_user(path)
    config = load_config(path, service_user=service_user)
    print("\n".join(summary(config) + folder_notes(config, service_user)
                    + [f"  {line}" for line in budget_warnings(config.logging, config.sensors)]))
    return ExitStatus.OK


def _service_user(path):
    """Who will write the config's folders when that is not this process:
    the User= of the installed unit that runs this config, else (for a user
    other than root) the owner of an existing log folder."""
    unit = unit_for_config(path)
    if unit is not None:
        return ServiceUser.from_unit(unit)
    try:
        log_dir = load_paths(path).log_dir
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


def summary(config):
    """A few lines on what the config will do."""
    log = config.logging
    lines = [
        f"{config.path}: OK",
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
    return lines


def _size(size):
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


def cmd_init(args):
    path = Path(args.path)
    if path.is_dir():
        print(f"edgesense: {path} is a folder; give a file name such as {path / DEFAULT_INIT_PATH}",
              file=sys.stderr)
        return ExitStatus.USAGE
    if not path.parent.is_dir():
        print(f"edgesense: cannot write {path}: there is no folder {path.parent} "
              "(init does not create folders)", file=sys.stderr)
        return ExitStatus.USAGE
    if path.exists() and not args.force:
        print(f"edgesense: {path} exists; not overwritten (use --force)", file=sys.stderr)
        return ExitStatus.USAGE
    example = resources.files("app").joinpath("config.example.toml").read_text(encoding="utf-8")
    try:
        path.write_text(example, encoding="utf-8")
    except OSError as error:
        print(f"edgesense: cannot write {path}: {error.strerror or error}", file=sys.stderr)
        return ExitStatus.FAILURE
    config_option = "" if path.resolve() == Path(DEFAULT_INIT_PATH).resolve() else f" --config {path}"
    print(f"wrote {path}; edit it, then `edgesense check{config_option}` "
          f"and `edgesense run{config_option}`")
    return ExitStatus.OK


def cmd_status(args):
    paths = _service_paths(args)
    try:
        text, state = read_state(paths.state_file)
    except StateFileError as error:
        print(error, file=sys.stderr)
        return ExitStatus.FAILURE
    lines, running = describe_state(with_latest_readings(state, latest_readings(paths.log_dir)))
    if args.json:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        print("\n".join(lines))
    return ExitStatus.OK if running else ExitStatus.FAILURE


def cmd_logs(args):
    if args.readings and args.level:
        print("edgesense: --level does not apply to --readings", file=sys.stderr)
        return ExitStatus.USAGE
    directory = _service_paths(args).log_dir
    if not directory.is_dir():
        print(f"edgesense: no log folder at {directory} "
              "(edgesense has not run with this config yet)", file=sys.stderr)
        return ExitStatus.FAILURE
    record_filter = RecordFilter(sensor=args.sensor, level=args.level, readings=args.readings)
    try:
        show_logs(directory, count=args.lines, record_filter=record_filter,
                  follow=args.follow, out=sys.stdout)
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            raise
        print(f"edgesense: cannot read {error.filename or directory}: {error.strerror or error}",
              file=sys.stderr)
        return ExitStatus.FAILURE
    return ExitStatus.OK


def _silence_stdout():
    """After the reader of a pipe went away (``| head``), let the interpreter
    exit without a second BrokenPipeError while flushing stdout."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())

"""The parts of install.sh that are easier to get right in Python (stdlib only).

    python3 installer.py digest WHEEL
    python3 installer.py example-config WHEEL                   > the wheel's example config
    python3 installer.py config SOURCE LOG_DIR STATE_FILE      > installed config
    python3 installer.py has-table CONFIG TABLE                 exit 0 if it has [TABLE]
    python3 installer.py relocate ROOT VENV
    python3 installer.py service-env ROOT UNIT STAGE -- COMMAND [ARGUMENT ...]

``example-config`` exits 1 for a wheel without one; ``config`` and
``relocate`` print one line on stderr and exit 1 when they
cannot do their job.
"""

import compileall
import hashlib
import os
import re
import shlex
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

# Where systemd looks for the unit's drop-ins, the first folder winning for a name.
UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system",
             "usr/lib/systemd/system")
DROP_IN_DIRS = ("service.d", "edgesense.service.d")


class Refused(Exception):
    """What install.sh cannot do, in one line."""


# --- digest ------------------------------------------------------------------


def wheel_digest(wheel):
    """Content digest of a wheel, blind to the zip's timestamps: the same
    source gives the same digest, so a second run can tell there is nothing
    to do."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name) + b"\0")
    return digest.hexdigest()


# --- config ------------------------------------------------------------------

EXAMPLE_IN_WHEEL = "app/config.example.toml"


def example_config(wheel):
    """The example config the wheel carries (bytes), or None."""
    with zipfile.ZipFile(wheel) as archive:
        try:
            return archive.read(EXAMPLE_IN_WHEEL)
        except KeyError:
            return None


def service_config(text, source, log_dir, state_file):
    """``text`` with a relative or missing ``[logging] dir`` set to
    ``log_dir`` and a relative (or commented) ``[supervisor] state_file`` set
    to ``state_file``; every other line stays as it is. A file that is not
    TOML is returned unchanged (the check reports it)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text
    lines = text.splitlines(keepends=True)
    for section, key, value, when_missing in (("logging", "dir", log_dir, True),
                                              ("supervisor", "state_file", state_file, False)):
        table = data.get(section, {})
        current = table.get(key) if isinstance(table, dict) else None
        if not isinstance(table, dict) or (current is not None and not isinstance(current, str)):
            continue  # a wrong type: the check says so
        if current is None and not when_missing and not _commented_key(lines, section, key):
            continue
        if current is None or not os.path.isabs(current):
            lines = _set_key(lines, section, key, value, source)
    return "".join(lines)


TABLE = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?$")
ANY_TABLE = re.compile(r"\s*\[")


def _key_line(key, commented=False):
    return re.compile(r"\s*" + (r"#\s*" if commented else "") + rf"(?P<q>[\"']?){key}(?P=q)\s*=")


def _section_range(lines, section):
    """(header index, end index) of ``[section]``, or None."""
    for start, line in enumerate(lines):
        match = TABLE.match(line)
        if match and match.group(1) == section:
            end = next((i for i in range(start + 1, len(lines)) if ANY_TABLE.match(lines[i])), len(lines))
            return start, end
    return None


def _commented_key(lines, section, key):
    span = _section_range(lines, section)
    return span is not None and any(_key_line(key, commented=True).match(line)
                                    for line in lines[span[0] + 1:span[1]])


def _set_key(lines, section, key, value, source):
    """``lines`` with ``key = "value"`` in ``[section]``: in place of the key
    (or of its commented line), else right below the header, else in a new
    section at the end. Refused when the result is not the same TOML with
    that one value changed (a key set in an inline table, a multi-line
    string, ...)."""
    assignment = f'{key} = "{value}"\n'
    span = _section_range(lines, section)
    if span is None:
        ending = "" if not lines or lines[-1].endswith("\n") else "\n"
        changed = lines + [ending + f"\n[{section}]\n", assignment]
    else:
        start, end = span
        places = [index for pattern in (_key_line(key), _key_line(key, commented=True))
                  for index in range(start + 1, end) if pattern.match(lines[index])]
        if places:
            changed = lines[:places[0]] + [assignment] + lines[places[0] + 1:]
        else:
            changed = lines[:start + 1] + [assignment] + lines[start + 1:]
    expected = tomllib.loads("".join(lines))
    expected.setdefault(section, {})[key] = value
    if _parsed("".join(changed)) != expected:
        raise Refused(f"{source}: cannot set [{section}] {key} to {value} line by line; "
                      f'write {key} = "{value}" in its [{section}] section')
    return changed


def has_table(config, table):
    """Whether the TOML file ``config`` has a top-level ``[table]`` (a file
    that is not TOML has none; the check reports it)."""
    data = _parsed(Path(config).read_text(encoding="utf-8-sig"))
    return data is not None and isinstance(data.get(table), dict)


def _parsed(text):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


# --- relocate ----------------------------------------------------------------


# What only install.sh runs (as root, which may rewrite their bytecode): their
# stale bytecode is removed rather than compiled again, which takes seconds.
INSTALL_TOOLS = ("pip", "setuptools", "pkg_resources", "_distutils_hack")


def relocate(root, venv):
    """Make the venv laid out at ``root + venv`` name ``venv`` only: its
    scripts' interpreter lines, its activation scripts and pyvenv.cfg, and
    the file names compiled into its bytecode. The image is then the same as
    one built at ``/``."""
    root = root.rstrip("/")
    here, final = (root + venv).encode(), venv.encode()
    folder = Path(root + venv)
    for path in [folder / "pyvenv.cfg", *sorted((folder / "bin").iterdir())]:
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            if here in content:
                _replace_file(path, content.replace(here, final))
    for cached in sorted(folder.glob("lib/python3*/site-packages/**/__pycache__/*.pyc")):
        if here not in cached.read_bytes():
            continue
        source = cached.parent.parent / (cached.name.split(".")[0] + ".py")
        top = cached.relative_to(next(p for p in cached.parents if p.name == "site-packages")).parts[0]
        if top in INSTALL_TOOLS or not source.is_file():
            cached.unlink()
        elif not compileall.compile_file(source, quiet=2, force=True, stripdir=root, prependdir="/"):
            raise Refused(f"could not compile {source}")


def _replace_file(path, content):
    mode = path.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as file:
        file.write(content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


# --- service-env -------------------------------------------------------------


def service_environment(root, unit):
    """The variables set by ``Environment=`` in ``unit`` and in the drop-ins
    for it under ``root``, merged the way systemd merges them; ``PYTHONPATH``
    entries point into ``root``. ``%`` specifiers are left as they are."""
    variables = {}
    for path in [Path(unit), *_drop_ins(root)]:
        for value in _service_settings(path, "Environment"):
            if not value:
                variables.clear()
            for assignment in shlex.split(value):
                name, separator, setting = assignment.partition("=")
                if separator:
                    variables[name] = setting
    if "PYTHONPATH" in variables:
        variables["PYTHONPATH"] = ":".join(root.rstrip("/") + entry if entry.startswith("/") else entry
                                           for entry in variables["PYTHONPATH"].split(":"))
    return variables


def _drop_ins(root):
    """The unit's drop-ins in the order systemd reads them: by name, a name
    in an earlier folder hiding the same name in later ones."""
    found = {}
    for folder in UNIT_DIRS:
        for drop_in_dir in DROP_IN_DIRS:
            for path in sorted((Path(root + "/") / folder / drop_in_dir).glob("*.conf")):
                found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


def _service_settings(path, key):
    section = None
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and line.partition("=")[0].strip() == key:
            yield line.partition("=")[2].strip()


def run_with_service_environment(root, unit, stage, command):
    """exec ``command`` with the service's variables added to a plain
    environment (PATH and a UTF-8 locale), ``stage`` first on PYTHONPATH,
    writing no bytecode."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    environment.update(service_environment(root, unit))
    if stage:
        environment["PYTHONPATH"] = ":".join(filter(None, [stage, environment.get("PYTHONPATH")]))
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    os.execve(command[0], command, environment)


# --- command line ------------------------------------------------------------


def main(argv):
    command, arguments = argv[0], argv[1:]
    if command == "digest":
        print(wheel_digest(arguments[0]))
    elif command == "example-config":
        example = example_config(arguments[0])
        if example is None:
            sys.exit(1)
        sys.stdout.buffer.write(example)
    elif command == "config":
        source, log_dir, state_file = arguments
        text = Path(source).read_text(encoding="utf-8-sig")
        sys.stdout.write(service_config(text, source, log_dir, state_file))
    elif command == "has-table":
        sys.exit(0 if has_table(*arguments) else 1)
    elif command == "relocate":
        relocate(*arguments)
    elif command == "service-env":
        root, unit, stage, separator, *rest = arguments
        assert separator == "--" and rest, "usage: service-env ROOT UNIT STAGE -- COMMAND ..."
        run_with_service_environment(root, unit, stage, rest)
    else:
        raise SystemExit(f"installer.py: unknown command {command}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Refused as error:
        print(error, file=sys.stderr)
        sys.exit(1)

"""Finding the config file and reading its TOML, with one clear line for
a file that cannot be read, is not UTF-8 or is not TOML."""

import os
import re
import tomllib
from pathlib import Path

from app.config_schema import ConfigError

BYTE_ORDER_MARK = "\ufeff"
SEARCH_PATHS = ("./edgesense.toml", "/etc/edgesense/config.toml")
"""Where ``find_config`` looks after ``$EDGESENSE_CONFIG``, in order."""


def find_config(environ=None, cwd=None):
    """The config file to use when none is given: ``$EDGESENSE_CONFIG``, then
    ``./edgesense.toml``, then ``/etc/edgesense/config.toml``; None when none
    exists (the caller runs the built-in demo). ``$EDGESENSE_CONFIG`` is
    returned even if it does not exist, so that a typo is reported."""
    environ = os.environ if environ is None else environ
    if environ.get("EDGESENSE_CONFIG"):
        return Path(environ["EDGESENSE_CONFIG"])
    cwd = Path.cwd() if cwd is None else Path(cwd)
    for candidate in SEARCH_PATHS:
        path = cwd / candidate
        if path.exists():
            return path
    return None


def absolute_path(path, cwd=None):
    """``path`` made absolute against ``cwd`` (default: the working folder)."""
    return Path(path).absolute() if cwd is None else Path(cwd, path).absolute()


def read_toml(path, *, cwd=None):
    """The file's TOML content as a dict; ConfigError (one line) when it
    cannot be read, is not UTF-8 or is not valid TOML. A relative ``path``
    is relative to ``cwd`` (default: the working folder); messages name the
    path as given."""
    file = absolute_path(path, cwd)
    if file.exists() and not (file.is_file() or file.is_dir()):
        raise ConfigError([f"{path}: not a regular file (a pipe or a device cannot be a config file)"])
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a config file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: cannot read: permission denied"]) from None
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_column(raw, error.start)
        raise ConfigError([
            f"{path}: line {line}, column {column}: not UTF-8 text "
            f"(byte 0x{raw[error.start]:02x}); save the file as UTF-8"
        ]) from None
    text = text.removeprefix(BYTE_ORDER_MARK)  # some Windows editors write one
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{path}: {_syntax_message(error)}"]) from None


def _line_column(raw, offset):
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def _syntax_message(error):
    """tomllib puts the position at the end of its message: move it first."""
    message = str(error)
    found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message)
    if found:
        return f"line {found[2]}, column {found[3]}: invalid TOML: {found[1]}"
    found = re.fullmatch(r"(.*) \(at end of document\)", message)
    if found:
        return f"at the end of the file: invalid TOML: {found[1]}"
    return f"invalid TOML: {message}"

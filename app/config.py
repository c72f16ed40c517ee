"""The configuration file (TOML): ``load_config`` and ``load_paths``.

``load_config(path)`` reads a file and returns a ``Config`` or raises
``ConfigError`` with every problem found, one line each, in the form
``<file>: <key path>: <what is wrong>``. Its parts: ``app.config_schema``
(the sections and keys), ``app.config_file`` (finding and reading the
file), ``app.config_validation`` (the checks) and ``app.paths`` (whether
the service can write where the config says).
"""


from app.config_file import SEARCH_PATHS, absolute_path, find_config, read_toml
from app.config_schema import (DEFAULT_LOG_DIR, LEVELS, REQUIRED_SENSOR_KEYS, SECTIONS,
                               STATE_FILE_NAME, Config, ConfigError, GpioSettings, SensorConfig,
                               SupervisorSettings)
from app.config_validation import ServicePaths, config_from_dict, paths_from_dict

__all__ = [
    "DEFAULT_LOG_DIR", "LEVELS", "REQUIRED_SENSOR_KEYS", "SEARCH_PATHS", "SECTIONS",
    "STATE_FILE_NAME", "Config", "ConfigError", "GpioSettings", "SensorConfig", "ServicePaths",
    "SupervisorSettings", "config_from_dict", "find_config", "load_config", "load_paths",
    "paths_from_dict",
]


def load_config(path, *, check_paths=True, cwd=None, service_user=None):
    """Read and validate a config file; raise ConfigError with all errors.

    A relative ``path`` is relative to ``cwd`` (default: the working
    folder); messages name the path as given. Relative paths in the file
    resolve against the file's folder. ``check_paths=False`` skips the
    writability checks of the log folder and the state file, for commands
    that only read them (``status``, ``logs``); ``service_user`` (an
    ``app.paths.ServiceUser``) judges them for that user instead of this
    process.
    """
    data = read_toml(path, cwd=cwd)
    absolute = absolute_path(path, cwd)
    return config_from_dict(data, path=absolute, base_dir=absolute.parent,
                            source=str(path), check_paths=check_paths, service_user=service_user)


def load_paths(path, *, cwd=None):
    """Only ``[logging] dir`` and ``[supervisor] state_file`` of a config
    file, for ``status`` and ``logs``: they work whatever else the file
    holds (a sensor section being edited, a custom type that imports only
    under the service's PYTHONPATH). Raise ConfigError (one line each) when
    the file is not TOML or those keys are wrong."""
    return paths_from_dict(read_toml(path, cwd=cwd), base_dir=absolute_path(path, cwd).parent,
                           source=str(path))

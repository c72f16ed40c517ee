"""The configuration file (TOML): defaults, validation, lookup."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from logging_setup import LogSettings


@dataclass(frozen=True)
class SensorConfig:
    """One ``[[sensor]]`` section. ``options`` holds the type-specific keys."""

    name: str
    type: str
    interval: float
    options: Mapping[str, Any] = field(default_factory=dict)
    read_timeout: float = 10.0
    max_failures: int = 5
    warn_above: float | None = None
    warn_below: float | None = None


@dataclass(frozen=True)
class SupervisorSettings:
    """The ``[supervisor]`` section. Times in seconds."""

    start_method: str = "forkserver"
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    stable_after: float = 60.0
    max_restarts: int = 5
    restart_window: float = 60.0
    failed_cooldown: float = 300.0
    stop_timeout: float = 5.0
    state_file: Path | None = None


@dataclass(frozen=True)
class GpioSettings:
    """The ``[gpio]`` section."""

    pin_factory: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path | None
    logging: LogSettings
    supervisor: SupervisorSettings
    gpio: GpioSettings
    sensors: tuple[SensorConfig, ...]


class ConfigError(Exception):
    """Every problem found in a config file, one line each."""

    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


def load_config(path):
    """Read and validate a config file; raise ConfigError with all errors."""
    raise NotImplementedError

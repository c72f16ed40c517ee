"""The log listener process: the only owner of log files (DESIGN.md L1, L3, L7-L9)."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LogSettings:
    """What the listener writes and where. Sizes in bytes."""

    dir: Path
    level: str = "INFO"
    max_file_bytes: int = 256 * 1024
    max_total_bytes: int = 4 * 1024 * 1024
    compress: bool = True
    console: bool = True


def run_listener(receiver, settings):
    """Process target: write every record from ``receiver`` to the files (and
    the console) until the stop sentinel, then flush and close."""
    raise NotImplementedError

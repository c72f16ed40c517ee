"""The built-in demo: what ``edgesense run`` does when no config exists.

Simulated sensors on gpiozero's mock pins (``sensors.demo``), plus the load
average and disk usage of this machine, with logs under ./edgesense-logs/.
It is validated like any config file, so it can never drift out of the rules.
"""

from pathlib import Path

from app.config import DEFAULT_LOG_DIR, config_from_dict

SOURCE = "built-in demo"

BANNER = (
    "edgesense: no config file found, running the built-in demo on mock pins "
    "(write a real config with `edgesense init`; Ctrl-C stops)"
)


def demo_settings():
    """The demo as the dict a config file would parse to."""
    return {
        "logging": {"dir": DEFAULT_LOG_DIR, "console": True},
        "gpio": {"pin_factory": "mock"},
        "sensor": [
            {"name": "button", "type": "sensors.demo:DemoButton", "interval": 1.0, "pin": 17},
            {"name": "motion", "type": "sensors.demo:DemoMotion", "interval": 1.0, "pin": 27},
            {"name": "light", "type": "sensors.demo:DemoLight", "interval": 2.0, "pin": 22,
             "warn_below": 0.2},
            {"name": "load", "type": "load_average", "interval": 5.0},
            {"name": "disk", "type": "disk_usage", "interval": 10.0},
        ],
    }


def demo_config(cwd=None):
    """The demo's Config; relative paths resolve against ``cwd``."""
    base_dir = Path.cwd() if cwd is None else Path(cwd)
    return config_from_dict(demo_settings(), path=None, base_dir=base_dir, source=SOURCE)

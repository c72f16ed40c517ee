"""Whether the service can write where the config says, found without
creating anything: an unwritable log folder is judged by its nearest
existing ancestor.

Each check adds ``(key path, message)`` problems to the collector that
config validation passes in.
"""

import os

from sensors.problems import render


def _nearest_existing(path):
    """``path`` or its nearest ancestor that exists."""
    probe = path
    while True:
        try:
            if probe.exists() or probe.parent == probe:
                return probe
        except OSError:
            return probe
        probe = probe.parent


def check_writable(directory, key_path, problems):
    """The folder exists and is writable, or could be created."""
    reason = _unwritable_reason(directory)
    if reason:
        problems.add(key_path, f"{render(str(directory))} {reason}")


def check_state_file(state_file, problems):
    if state_file.is_dir():
        problems.add("supervisor.state_file", f"{render(str(state_file))} is a folder; "
                                              "expected a file path")
        return
    reason = _unwritable_reason(state_file.parent)
    if reason:
        problems.add("supervisor.state_file", f"{render(str(state_file))} cannot be written: "
                                              f"its folder {reason}")


def _unwritable_reason(directory):
    """Why files cannot be written in ``directory`` (without creating it),
    or None."""
    existing = _nearest_existing(directory)
    if existing == directory:
        if not directory.is_dir():
            return "exists and is not a folder"
        if not os.access(directory, os.W_OK | os.X_OK):
            return "is not writable"
        return None
    if not existing.is_dir():
        return f"cannot be created: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be created: {existing} is not writable"
    return None

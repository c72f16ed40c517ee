"""How edgesense puts a value and what is wrong with it into words.

Config validation and sensor types share these (``sensors`` cannot import
``app``), so a message reads the same whichever layer found the problem.
"""

import difflib
import json


def render(value):
    """A value as it was written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dict, list)):
        return describe(value)
    return str(value)


def describe(value):
    """The TOML type of a value, in words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def did_you_mean(word, candidates):
    """``"; did you mean X?"`` for the candidate closest to ``word``, or ``""``."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""

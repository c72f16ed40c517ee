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
    """``"; did you mean X?"`` for the candidate closest to ``word`` (the
    same name in another case first), or ``""``: every message suggests
    this one way.

    >>> did_you_mean("intervall", ["name", "interval"])
    '; did you mean interval?'
    >>> did_you_mean("gpio17", ["GPIO17"])
    '; did you mean GPIO17?'
    >>> did_you_mean("zzz", ["name"])
    ''
    """
    word = str(word)
    folded = {str(candidate).casefold(): str(candidate) for candidate in candidates
              if str(candidate) != word}
    close = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
    return f"; did you mean {folded[close[0]]}?" if close else ""


# --- What is wrong, in the same words for config keys and sensor options ---


def number_words(number):
    """A bound as messages print it: integers whole, others shortest."""
    return str(number) if isinstance(number, int) else f"{number:g}"


def range_words(kind, low=None, high=None, *, low_inclusive=True, unit=""):
    """What a range allows, in words.

    >>> range_words("a number", 0, 86400, low_inclusive=False, unit="seconds")
    'a number > 0 and <= 86400 (seconds)'
    >>> range_words("an integer", 1)
    'an integer >= 1'
    """
    words = kind
    if low is not None:
        words += f" {'>=' if low_inclusive else '>'} {number_words(low)}"
    if high is not None:
        words += f"{' and' if low is not None else ''} <= {number_words(high)}"
    if unit:
        words += f" ({unit})"
    return words


def choice_words(choices):
    """``one of a, b, c``."""
    return "one of " + ", ".join(str(choice) for choice in choices)


def wrong_type(value, expected):
    """``"17" is a string; expected an integer``."""
    return f"{render(value)} is {describe(value)}; expected {expected}"


def out_of_range(value, expected):
    """``-1 is out of range; expected a number >= 0``."""
    return f"{render(value)} is out of range; expected {expected}"


def not_allowed(value, choices):
    """``"lgpoi" is not allowed; expected one of lgpio, mock; did you mean
    lgpio?`` (a suggestion for text only: 10 is not a misspelt 15)."""
    hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    return f"{render(value)} is not allowed; expected {choice_words(choices)}{hint}"


def unknown_key(name, allowed, *, also=(), label="allowed"):
    """``unknown key; did you mean pin? (allowed: pin, pull_up)``; the
    suggestion may also be one of the keys ``also`` (a sensor section's
    common keys, for a type's unknown option)."""
    listed = ", ".join(allowed) if allowed else "none"
    return f"unknown key{did_you_mean(name, [*allowed, *also])} ({label}: {listed})"

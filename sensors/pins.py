"""GPIO pins and pin factories, one place for both.

Pins: which names gpiozero takes as a GPIO pin, the one name it gives each
(``17``, ``"BCM17"`` and ``"BOARD11"`` are all ``"GPIO17"``), and the pins a
sensor section uses. Pin factories: the ones installed, found as gpiozero
finds them (its ``gpiozero_pin_factories`` entry points, so a third-party
factory counts as soon as its package is installed), and opening one.
"""

import functools
import os
import re
import tempfile
import warnings

from sensors import registry
from sensors.problems import did_you_mean, render

BCM_PIN = re.compile(r"(?:GPIO|BCM)?(0|[1-9][0-9]?)")
HIGHEST_BCM_PIN = 53
"""The highest GPIO number of any Pi (the compute modules'); the 40-pin
header has GPIO0 to GPIO27, which is what the board tables know."""

FACTORY_GROUP = "gpiozero_pin_factories"
DEFAULT_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native")
"""The factories gpiozero tries, in its order, when none is named."""

MOCK_HINT = 'to try without hardware, set `[gpio] pin_factory = "mock"`'


# --- Pins ---


def canonical_pin(name):
    """gpiozero's name for a header pin, or ``str(name)``.

    >>> canonical_pin(17), canonical_pin("BOARD11"), canonical_pin("GPIO99")
    ('GPIO17', 'GPIO17', 'GPIO99')
    """
    for _header, pin in _header_info().find_pin(name):
        return pin.name
    return str(name)


@functools.cache
def _header_info():
    # Board data only: no pin factory is created. Every Pi since the B+ has
    # the same 40-pin header, so one model's table serves them all.
    from gpiozero.pins.pi import PiBoardInfo
    return PiBoardInfo.from_revision(0xA02082)


def is_gpio_pin(value):
    """Whether gpiozero can take ``value`` as a GPIO pin: a BCM number 0-53
    (``17``, ``"17"``, ``"GPIO17"``, ``"BCM17"``) or a header name of a GPIO
    pin (``"BOARD11"``, ``"J8:11"``, ``"WPI0"``). Names are case-sensitive,
    as in gpiozero: ``"gpio17"`` is not a pin.

    >>> [is_gpio_pin(pin) for pin in (17, "BOARD11", "gpio17", "BOARD1", 54)]
    [True, True, False, False, False]
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    if isinstance(value, int):
        return 0 <= value <= HIGHEST_BCM_PIN
    number = BCM_PIN.fullmatch(value)
    if number:
        return int(number[1]) <= HIGHEST_BCM_PIN
    canonical = canonical_pin(value)
    return canonical != value and BCM_PIN.fullmatch(canonical) is not None


def pin_problem(value):
    """Why ``value`` is not a GPIO pin, with a did-you-mean for a name in
    the wrong case."""
    message = (f"{render(value)} is not a GPIO pin; expected a BCM number 0-{HIGHEST_BCM_PIN} "
               '(17, "GPIO17", "BCM17") or a header pin ("BOARD11", "J8:11")')
    if isinstance(value, str) and is_gpio_pin(value.strip().upper()):
        message += did_you_mean(value, [value.strip().upper()])
    return message


def pins_of(type_name, options):
    """The GPIO pins a section uses (its type's ``pin_options``), each by
    its ``canonical_pin`` name, for detecting two sensors on one pin. An
    unknown type has no pins (``registry.check_options`` reports it).

    >>> pins_of("distance", {"echo": "J8:11", "trigger": 4})
    ['GPIO17', 'GPIO4']
    """
    try:
        cls = registry.resolve(type_name)
    except registry.SensorTypeError:
        return []
    keys = getattr(cls, "pin_options", ())
    return [canonical_pin(options[key]) for key in keys if key in options]


# --- Pin factories ---


class NoPinFactory(Exception):
    """The pin factory cannot be opened (none installed opens, or the name
    is not installed), in one line that says which were tried and why each
    failed."""


def give_lgpio_a_work_dir():
    """Point ``LG_WD`` at a writable folder unless it is set: lgpio makes a
    notification FIFO there, by default in the working directory, which a
    hardened service cannot write and ``check`` must leave alone. Any
    sensor may open lgpio, through gpiozero's default factory."""
    os.environ.setdefault("LG_WD", os.environ.get("RUNTIME_DIRECTORY") or tempfile.gettempdir())


def _factory_entries():
    from importlib.metadata import entry_points  # only when asked: most commands never need it

    return {entry.name.lower(): entry for entry in entry_points(group=FACTORY_GROUP)}


def factory_names():
    """The installed pin factories: gpiozero's defaults in the order it
    tries them, then the others (``mock``, third-party ones) sorted."""
    installed = _factory_entries()
    defaults = [name for name in DEFAULT_FACTORIES if name in installed]
    return tuple(defaults + sorted(set(installed) - set(defaults)))


def open_pin_factory(name, environ=os.environ):
    """The pin factory called ``name`` (any case); for None the one
    ``$GPIOZERO_PIN_FACTORY`` names, else the first of gpiozero's defaults
    that opens. Raises NoPinFactory (one line, with the hint to use
    ``mock``) when none opens or the name is not installed."""
    name = name or environ.get("GPIOZERO_PIN_FACTORY")
    give_lgpio_a_work_dir()
    entries = _factory_entries()
    if name is not None:
        entry = entries.get(name.lower())
        if entry is None:
            raise NoPinFactory(f"unknown pin factory {render(name)}{did_you_mean(name.lower(), list(entries))}"
                             f" (installed: {', '.join(factory_names())})")
        return _open_or_explain({name.lower(): entry})
    return _open_or_explain({name: entries[name] for name in DEFAULT_FACTORIES if name in entries})


def _open_or_explain(candidates):
    """The first of ``candidates`` (name -> entry point) that opens."""
    reasons = []
    for name, entry in candidates.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # gpiozero's fallback chatter: the reasons say it
                return entry.load()()
        except Exception as error:
            reasons.append(f"{name} ({_reason(error)})")
    tried = ", ".join(reasons) or "none installed"
    raise NoPinFactory(f"no GPIO here: tried {tried}; {MOCK_HINT}")


def _reason(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def factory_problem(name, environ=os.environ):
    """Why the pin factory that sensors would use (see ``open_pin_factory``)
    cannot open on this machine, or None. It is opened and closed again."""
    try:
        open_pin_factory(name, environ).close()
    except NoPinFactory as error:
        return str(error)
    return None

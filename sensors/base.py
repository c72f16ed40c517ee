"""The Sensor interface and the Reading it returns."""

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Reading:
    """One reading: a number in a unit, plus type-specific extra fields
    (such as ``activations``) that land in readings.jsonl beside it."""

    value: float
    unit: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


class Sensor(abc.ABC):
    """A sensor type: built from its config section's type-specific keys as
    keyword arguments, read on a schedule inside its own process."""

    @abc.abstractmethod
    def read(self) -> Reading:
        """Read the device once."""

    def close(self) -> None:
        """Release the device (its pins). Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

"""What every kind's parameters share: the build option of every kind, and turning a mapping
into a params dataclass with the unknown keys named."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ParameterError, require

REORDERINGS = ("none", "bp")


@dataclass(frozen=True)
class OrderedBuild:
    """The build option of every kind (each BuildParams derives from it): the documents' order.

    Reordering gives documents that share terms neighbouring rows, which makes block
    structures tighter; it changes rows, never ids or scores.
    """

    reorder: str = field(default="none", metadata={
        "help": "document order before building: none (as given) or bp (recursive graph bisection)"})

    def __post_init__(self):
        require(self.reorder in REORDERINGS, f"reorder must be one of {', '.join(REORDERINGS)}, got {self.reorder!r}")


def make_params(cls: type, values: Mapping[str, Any], what: str):
    """Instantiate a params dataclass, naming any unknown key in the error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise ParameterError(f"unknown {what} parameter(s) {', '.join(unknown)} (known: {known})")
    return cls(**values)

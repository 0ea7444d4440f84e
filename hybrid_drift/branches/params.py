"""Parameter constraints of the branches: one table per class, checked in one place.

Each branch class declares ``_parameter_constraints`` (name -> rule); :func:`check_params`
applies it when a branch is constructed, which is also how a saved model is rebuilt (model files
are data: a setting out of range is refused there too), and the command line reads its choices
from the same rules (``choices``). The pattern is scikit-learn's ``_parameter_constraints``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Int", "Num", "Options", "IntPair", "Size", "Hex64", "OptionalStr", "Bool", "Backbone", "check_params"]


@dataclass(frozen=True)
class Num:
    """A number in ``lo..hi`` (an int when ``integer``)."""

    lo: float
    hi: float
    integer: bool = False

    def check(self, name, v):
        kind = int if self.integer else (int, float)
        if isinstance(v, bool) or not isinstance(v, kind) or not self.lo <= v <= self.hi:
            what = f"an int in {self.lo}..{self.hi}" if self.integer else f"a number in [{self.lo:g}, {self.hi:g}]"
            raise ValueError(f"{name} must be {what}, got {v!r}")


def Int(lo: int, hi: int) -> Num:  # noqa: N802 - reads like the other rules in a constraints table
    """An int in ``lo..hi``."""
    return Num(lo, hi, integer=True)


@dataclass(frozen=True)
class Options:
    choices: tuple

    def check(self, name, v):
        if v not in self.choices:
            raise ValueError(f"{name} must be one of {self.choices}, got {v!r}")


@dataclass(frozen=True)
class IntPair:
    lo: int
    hi: int

    def check(self, name, v):
        if not (isinstance(v, tuple) and len(v) == 2 and all(not isinstance(g, bool) and isinstance(g, int)
                                                              and self.lo <= g <= self.hi for g in v)):
            raise ValueError(f"{name} must be two ints in {self.lo}..{self.hi}, got {v!r}")


@dataclass(frozen=True)
class Size:
    """An image size: one int, or (height, width), each in ``lo..hi`` pixels."""

    lo: int = 32
    hi: int = 4096

    def check(self, name, v):
        sizes = v if isinstance(v, tuple) else (v,)
        if not (1 <= len(sizes) <= 2 and all(not isinstance(s, bool) and isinstance(s, int) and self.lo <= s <= self.hi
                                             for s in sizes)):
            raise ValueError(f"{name} must be {self.lo}..{self.hi} pixels (an int or (height, width)), got {v!r}")


@dataclass(frozen=True)
class Hex64:
    """A SHA-256 hex digest (None allowed: not known yet)."""

    def check(self, name, v):
        if v is not None and not (isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)):
            raise ValueError(f"{name} must be a SHA-256 hex digest, got {v!r}")


@dataclass(frozen=True)
class OptionalStr:
    def check(self, name, v):
        if v is not None and not isinstance(v, str):
            raise ValueError(f"{name} must be a string or None, got {v!r}")


@dataclass(frozen=True)
class Bool:
    def check(self, name, v):
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be True or False, got {v!r}")


@dataclass(frozen=True)
class Backbone:
    """The name of a registered CNN backbone (:func:`hybrid_drift.features.cnn.available_backbones`)."""

    def check(self, name, v):
        from ..exceptions import BackboneUnavailableError
        from ..features.cnn import available_backbones
        if v not in available_backbones():
            raise BackboneUnavailableError(f"unknown backbone {v!r}; available: {', '.join(available_backbones())}")

    @property
    def choices(self) -> tuple:
        from ..features.cnn import available_backbones
        return tuple(available_backbones())


def check_params(cls, values: dict[str, Any]) -> None:
    """Check ``values`` against ``cls._parameter_constraints`` (names it has no rule for pass)."""
    rules = getattr(cls, "_parameter_constraints", {})
    for name, v in values.items():
        rule = rules.get(name)
        if rule is not None:
            rule.check(name, v)

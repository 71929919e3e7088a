"""Client operations and their outcomes, shaped like the history format the checkers read.

A simulated (or real) client submits an `Operation`; the protocol answers with an
`Outcome`. ``ok`` means it took effect with this result, ``fail`` means it certainly had no
effect, ``info`` means the outcome is unknown (a client gives up waiting and records that).
See ``docs/formats.md`` and the histories README for the JSON form.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Operation", "OpValue", "Outcome", "OutcomeType"]

Scalar = int | str | None
OpValue = Scalar | tuple[Scalar, Scalar]
"""`read`: None on invoke; `write`/`append`: the value; `cas`: (expected, new)."""

OutcomeType = Literal["ok", "fail", "info"]


class Operation(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """One client operation: ``f`` is read, write, cas or append; ``key`` None = one register."""

    f: str
    key: str | None = None
    value: OpValue = None
    data: bytes | None = None
    """An application's own encoded command or query (e.g. `tejido.mvcc`'s), carried
    through the protocol untouched; the register workloads leave it None."""

    def describe(self) -> str:
        key = f" {self.key}" if self.key is not None else ""
        return f"{self.f}{key} {self.value!r}"


class Outcome(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """How an operation ended; for a read, ``value`` is what was read."""

    type: OutcomeType
    value: OpValue = None
    error: str | None = None
    data: bytes | None = None
    """An application's own encoded result (see `Operation.data`)."""

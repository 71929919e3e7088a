"""Wire messages and reported events: small, frozen, self-describing values.

Every message kind is its own `Message` subclass (a frozen msgspec Struct), so a protocol's
messages form a union that `match` can dispatch on exhaustively, and the same values can be
encoded for the wire (msgpack) without a second schema. `describe()` renders a message as
one line; logs, traces, diagrams and golden scenario files all use that line.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

__all__ = ["Event", "Message", "describe_value"]


def describe_value(value: object) -> str:
    """Render one field value compactly and deterministically."""
    if isinstance(value, bytes):
        if len(value) <= 16:
            return value.hex() if value else "''"
        return f"<{len(value)}B>"
    if isinstance(value, msgspec.Struct):
        inner = describe(value)
        return f"({inner})"
    if isinstance(value, (list, tuple)):
        if len(value) > 8:
            shown = ",".join(describe_value(v) for v in value[:8])
            return f"[{shown},+{len(value) - 8}]"
        return "[" + ",".join(describe_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: repr(kv[0]))
        return "{" + ",".join(f"{k}:{describe_value(v)}" for k, v in items) + "}"
    if isinstance(value, str):
        return value if value and " " not in value and len(value) <= 32 else repr(value)
    return repr(value)


def describe(struct: msgspec.Struct) -> str:
    """`TypeName field=value ...` for any Struct, fields in declaration order."""
    parts = [type(struct).__name__]
    for field in struct.__struct_fields__:
        parts.append(f"{field}={describe_value(getattr(struct, field))}")
    return " ".join(parts)


class Message(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Base of every wire message kind.

    Subclasses inherit `frozen` and `tag` (the tag is the class name, so a union of message
    kinds decodes without ambiguity). Override `describe()` when the default
    ``Name field=value ...`` rendering hides what matters.
    """

    kind: ClassVar[str] = "message"

    def describe(self) -> str:
        """One line for logs, traces and golden files."""
        return describe(self)


class Event(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Base of events a protocol reports (``BecameLeader term=3``, ``Applied index=7``).

    Events are for observers: traces, diagrams, invariant checkers and metrics. They never
    change protocol behaviour.
    """

    def describe(self) -> str:
        return describe(self)

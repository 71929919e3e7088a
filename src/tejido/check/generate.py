"""Deterministic random histories for tests and benchmarks.

`generate_history` simulates clients of a linearizable key-value store: each client has at
most one operation outstanding, every operation takes effect at one random moment between
its invocation and its completion, and a few operations end with an unknown outcome
(``info``; some of those took effect, some never did). The result is linearizable by
construction. `mutate_history` then breaks one read so that the history is not.

Everything is driven by a seeded `random.Random`, so a seed always gives the same history.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

import msgspec

from tejido.check.history import HistoryEvent, format_event

__all__ = ["generate_history", "history_text", "mutate_history"]

_IMPOSSIBLE_INT: Final = -1
_IMPOSSIBLE_SUFFIX: Final = "#"


class _Pending(msgspec.Struct, gc=False):
    f: str
    key: str | None
    value: object
    applied: bool = False
    result: object = None
    outcome: str = "ok"
    unknown: bool = False  # completes with info
    never: bool = False  # an info op that never takes effect


def generate_history(
    seed: int,
    *,
    operations: int = 1000,
    clients: int = 20,
    keys: int = 10,
    info_rate: float = 0.01,
    values: int = 5,
    appends: bool = True,
) -> list[HistoryEvent]:
    """A linearizable history of `operations` ops by `clients` clients over `keys` keys.

    With ``keys == 0`` the history has no keys (one register). Keys with an even index are
    registers (read / write / cas over ``values`` small integers); with `appends`, keys
    with an odd index take read / append (strings ``"p.n "``). A cas whose comparison does
    not hold completes with ``fail``. About `info_rate` of the operations complete with
    ``info``; half of those never take effect.
    """
    rng = random.Random(seed)
    key_names: list[str | None] = [f"k{k}" for k in range(keys)] if keys > 0 else [None]
    store: dict[str | None, object] = {}
    pending: dict[int, _Pending] = {}
    events: list[HistoryEvent] = []
    started = 0
    counter = 0
    while started < operations or pending:
        client = rng.randrange(clients)
        op = pending.get(client)
        if op is None:
            if started >= operations:
                continue
            started += 1
            op = _invent(rng, rng.randrange(len(key_names)), key_names, values, appends)
            counter += 1
            if op.f == "append":
                op.value = f"{client}.{counter} "
            if rng.random() < info_rate:
                op.unknown = True
                op.never = rng.random() < 0.5
            pending[client] = op
            events.append(HistoryEvent(client, "invoke", op.f, op.key, op.value))
        elif not op.applied and not op.never:
            _apply(op, store)
        else:
            del pending[client]
            if op.unknown:
                events.append(HistoryEvent(client, "info", op.f, op.key, op.value))
            elif op.f == "read":
                events.append(HistoryEvent(client, "ok", "read", op.key, op.result))
            else:
                events.append(HistoryEvent(client, op.outcome, op.f, op.key, op.value))
    return events


def _invent(
    rng: random.Random,
    index: int,
    key_names: Sequence[str | None],
    values: int,
    appends: bool,
) -> _Pending:
    key = key_names[index]
    roll = rng.random()
    if appends and index % 2 == 1:
        return _Pending("read", key, None) if roll < 0.5 else _Pending("append", key, "")
    if roll < 0.45:
        return _Pending("read", key, None)
    if roll < 0.75:
        return _Pending("write", key, rng.randrange(values))
    return _Pending("cas", key, [rng.randrange(values), rng.randrange(values)])


def _apply(op: _Pending, store: dict[str | None, object]) -> None:
    op.applied = True
    current = store.get(op.key)
    if op.f == "read":
        op.result = current
    elif op.f == "write":
        store[op.key] = op.value
    elif op.f == "cas":
        expected, new = op.value if isinstance(op.value, list) else (None, None)
        if current == expected:
            store[op.key] = new
        else:
            op.outcome = "fail"
    else:
        store[op.key] = (current if isinstance(current, str) else "") + str(op.value)


def mutate_history(events: Sequence[HistoryEvent], seed: int) -> list[HistoryEvent]:
    """The history with one ``ok`` read changed to a value no operation could produce.

    The read then has no linearization whatever the other operations did, so the result is
    not linearizable. Raises `ValueError` when the history has no ``ok`` read.
    """
    reads = [i for i, event in enumerate(events) if event.type == "ok" and event.f == "read"]
    if not reads:
        raise ValueError("the history has no ok read to mutate")
    index = random.Random(seed).choice(reads)
    event = events[index]
    if isinstance(event.value, str):
        bad: object = event.value + _IMPOSSIBLE_SUFFIX
    elif event.value is None:
        bad = _IMPOSSIBLE_INT if not _has_appends(events, event.key) else _IMPOSSIBLE_SUFFIX
    else:
        bad = _IMPOSSIBLE_INT
    mutated = list(events)
    mutated[index] = msgspec.structs.replace(event, value=bad)
    return mutated


def _has_appends(events: Sequence[HistoryEvent], key: str | None) -> bool:
    return any(event.f == "append" and event.key == key for event in events)


def history_text(events: Sequence[HistoryEvent]) -> str:
    """The events as JSON-lines text (what `parse_history` reads)."""
    return "".join(format_event(event) + "\n" for event in events)

"""The nemesis's load: read / write / compare-and-set clients that record a history.

A load *worker* is a separate OS process (``python -m tejido.store.nemesis worker SPEC``)
running a few logical clients, each a `tejido.store.Client` of the whole cluster, in a
closed loop on a handful of keys until a stop file appears. Every operation is written
to the worker's history file as it starts and as it ends, in the JSON-lines format of
``docs/formats.md`` (Jepsen's operation events: ``invoke``, then ``ok`` / ``fail`` /
``info``), with ``time`` in nanoseconds of the system-wide monotonic clock so the files
of several processes can be merged into one real-time order (`merge_histories`).

Rules:

1. Values are integers, unique per write (a write of value v is the only one that could
   make a read return v), stored as their decimal text; an absent key reads ``null``.
2. Outcomes are recorded as the client reports them (`tejido.store.errors`): ``ok``;
   ``fail`` for a read or write refused with `NotApplied` (certainly no effect) and for a
   cas whose comparison did not hold; ``info`` for `OutcomeUnknown`, and for a cas refused
   with `NotApplied` (it had no effect, but ``fail`` would claim its comparison failed,
   so the weaker ``info`` is recorded). A client whose operation ended ``info`` continues
   under a new process id, as in Jepsen: the old operation may still take effect.
3. Times are strictly increasing within one recorder, so a process's completion always
   precedes its next invocation; when events of different processes carry the same time,
   `merge_histories` puts invocations first (that only makes operations overlap more,
   which can never hide a violation that real time shows).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import msgspec

from tejido.mvcc import api
from tejido.store.client import Client
from tejido.store.errors import NotApplied, OutcomeUnknown

__all__ = [
    "HistoryRecorder",
    "LoadClient",
    "WorkerSpec",
    "decode_value",
    "merge_histories",
    "run_worker",
]

PROCESSES_PER_CLIENT = 1000
"""Process ids a logical client may use (a new one after each ``info``, rule 2)."""

_ENCODER = msgspec.json.Encoder()


class WorkerSpec(msgspec.Struct, frozen=True):
    """What one load worker process does (passed as JSON on its command line)."""

    endpoints: list[str]
    keys: list[str]
    history: str
    stop_file: str
    first_client: int
    clients: int = 2
    seed: int = 0
    timeout_s: float = 5.0
    read_fraction: float = 0.5
    cas_fraction: float = 0.25
    cluster: str = "tejido"


class HistoryRecorder:
    """Appends history events (dicts of the history format) to a file or a list (rule 3)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out
        self.events: list[dict[str, Any]] = []
        self._last_ns = 0

    def record(self, process: int, kind: str, f: str, key: str, value: object) -> None:
        now = max(time.monotonic_ns(), self._last_ns + 1)
        self._last_ns = now
        event = {"process": process, "type": kind, "f": f, "key": key, "value": value, "time": now}
        if self.out is not None:
            self.out.write(_ENCODER.encode(event).decode() + "\n")
            self.out.flush()
        else:
            self.events.append(event)


def decode_value(raw: bytes | None) -> int | str | None:
    """A stored value as the history shows it (rule 1; text if it is not a number)."""
    if raw is None:
        return None
    text = raw.decode(errors="replace")
    return int(text) if text.lstrip("-").isdigit() else text


class LoadClient:
    """One logical client: reads, writes and cas on `keys` through `client` (rules 1-2)."""

    def __init__(
        self,
        client: Client,
        recorder: HistoryRecorder,
        number: int,
        keys: list[str],
        rng: random.Random,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.number = number
        self.process = number * PROCESSES_PER_CLIENT
        self.keys = keys
        self.rng = rng
        self.next_value = number * 10_000_000
        self.seen: dict[str, object] = {}
        self.completed: dict[str, int] = {}

    def _unique(self) -> int:
        self.next_value += 1
        return self.next_value

    def _end(self, kind: str, f: str, key: str, value: object) -> None:
        self.recorder.record(self.process, kind, f, key, value)
        self.completed[kind] = self.completed.get(kind, 0) + 1
        if kind == "info":
            self.process += 1  # rule 2: a fresh process id

    async def read(self, key: str, *, serializable: bool = False) -> object:
        self.recorder.record(self.process, "invoke", "read", key, None)
        try:
            kv = await self.client.get(key, serializable=serializable)
        except NotApplied:
            self._end("fail", "read", key, None)
            return None
        except OutcomeUnknown:
            self._end("info", "read", key, None)
            return None
        value = decode_value(kv.value if kv is not None else None)
        self.seen[key] = value
        self._end("ok", "read", key, value)
        return value

    async def write(self, key: str, value: int | None = None) -> bool:
        value = self._unique() if value is None else value
        self.recorder.record(self.process, "invoke", "write", key, value)
        try:
            await self.client.put(key, str(value))
        except NotApplied:
            self._end("fail", "write", key, value)
            return False
        except OutcomeUnknown:
            self._end("info", "write", key, value)
            return False
        self.seen[key] = value
        self._end("ok", "write", key, value)
        return True

    async def cas(self, key: str, expected: object) -> bool:
        new = self._unique()
        pair = [expected, new]
        self.recorder.record(self.process, "invoke", "cas", key, pair)
        request = api.TxnRequest(
            compare=[api.Compare(key=key.encode(), target="VALUE", value=str(expected).encode())],
            success=[api.PutRequest(key=key.encode(), value=str(new).encode())],
        )
        try:
            reply = await self.client.txn(request)
        except (NotApplied, OutcomeUnknown):
            self._end("info", "cas", key, pair)  # rule 2
            return False
        if reply.result.succeeded:
            self.seen[key] = new
            self._end("ok", "cas", key, pair)
            return True
        self._end("fail", "cas", key, pair)
        return False

    async def step(self) -> None:
        """One operation on a random key: a read, a write, or a cas from the last value
        this client saw for the key (a write when it saw none)."""
        key = self.rng.choice(self.keys)
        draw = self.rng.random()
        if draw < self.read_fraction:
            await self.read(key)
        elif draw < self.read_fraction + self.cas_fraction and self.seen.get(key) is not None:
            await self.cas(key, self.seen[key])
        else:
            await self.write(key)

    read_fraction = 0.5
    cas_fraction = 0.25


async def run_worker(spec: WorkerSpec) -> dict[str, int]:
    """Run `spec.clients` logical clients until the stop file exists; returns the counts
    of completions by type."""
    stop = Path(spec.stop_file)
    totals: dict[str, int] = {}
    with open(spec.history, "a", encoding="utf-8") as out:
        recorder = HistoryRecorder(out)

        async def one(index: int) -> None:
            number = spec.first_client + index
            rng = random.Random(spec.seed * 7919 + number)
            async with Client(spec.endpoints, timeout_s=spec.timeout_s, cluster=spec.cluster) as c:
                load = LoadClient(c, recorder, number, spec.keys, rng)
                load.read_fraction = spec.read_fraction
                load.cas_fraction = spec.cas_fraction
                while not stop.exists():
                    await load.step()
                for kind, count in load.completed.items():
                    totals[kind] = totals.get(kind, 0) + count

        await asyncio.gather(*(one(i) for i in range(spec.clients)))
    return totals


def merge_histories(
    paths: Iterable[Path], extra: Iterable[dict[str, Any]] = (), out: Path | None = None
) -> list[str]:
    """The events of several history files (and `extra` events) as JSON lines in one
    real-time order (rule 3); also written to `out` when given."""
    events: list[dict[str, Any]] = list(extra)
    decode: Callable[[bytes], Any] = msgspec.json.decode
    for path in paths:
        if path.exists():
            events.extend(decode(line) for line in path.read_bytes().splitlines() if line.strip())
    events.sort(key=lambda e: (e["time"], e["type"] != "invoke"))
    lines = [_ENCODER.encode(e).decode() for e in events]
    if out is not None:
        out.write_text("".join(line + "\n" for line in lines))
    return lines

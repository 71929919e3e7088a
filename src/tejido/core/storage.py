"""The storage contract every protocol writes through, and every runtime implements.

A protocol never touches a disk. It *emits* storage operations (`LogAppend`, `LogTruncate`,
`LogCompact`, `Put`) and, when it needs them durable, a sync request; the runtime applies
the operations in order and later hands back `Durable(token)`. What a protocol reads is
what it wrote (it keeps its own in-memory copy) plus, at (re)start, the `Recovered` state
the runtime found on disk.

Durability rules (the simulator enforces exactly these; the disk runtime provides them):

1. Operations are applied in the order they are emitted.
2. ``sync()`` returns a token; once `Durable(token)` is delivered, every operation emitted
   before that sync survives any later crash. Tokens are delivered in increasing order.
3. An operation not yet covered by a completed sync may be lost by a crash. What survives
   is, for the log, a prefix of the unsynced log operations, and for each key, a prefix of
   that key's unsynced puts (the log and each key may lose different amounts: files are
   flushed independently).
4. A crash may tear the last surviving log append: only a prefix of its records survives
   (record checksums turn a torn record into a missing one; a record is never half there).

The log is a sequence of opaque byte records addressed by absolute index. ``first_index``
is the index of the first record still held (it moves forward with `LogCompact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tejido.core.errors import LocalProtocolError

__all__ = [
    "LogAppend",
    "LogCompact",
    "LogTruncate",
    "Put",
    "Recovered",
    "StorageOp",
    "StorageState",
]


@dataclass(frozen=True, slots=True)
class LogAppend:
    """Append records at the end of the log."""

    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LogTruncate:
    """Remove every record with index >= `from_index` (a suffix that conflicts)."""

    from_index: int


@dataclass(frozen=True, slots=True)
class LogCompact:
    """Forget every record with index < `before_index` (covered by a snapshot)."""

    before_index: int


@dataclass(frozen=True, slots=True)
class Put:
    """Set a small durable value under `key`; `None` deletes it."""

    key: str
    value: bytes | None


StorageOp = LogAppend | LogTruncate | LogCompact | Put


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a runtime found on disk when a node (re)starts. Empty for a new node."""

    first_index: int = 0
    records: tuple[bytes, ...] = ()
    state: dict[str, bytes] = field(default_factory=dict)

    @property
    def next_index(self) -> int:
        return self.first_index + len(self.records)


class StorageState:
    """A mutable log + key/value image that applies `StorageOp`s by the rules above.

    Runtimes use it for their in-memory view of a disk; it validates each operation so a
    protocol that truncates beyond its log or compacts backwards fails loudly.
    """

    __slots__ = ("first_index", "records", "state")

    def __init__(self, recovered: Recovered | None = None) -> None:
        recovered = recovered or Recovered()
        self.first_index = recovered.first_index
        self.records: list[bytes] = list(recovered.records)
        self.state: dict[str, bytes] = dict(recovered.state)

    @property
    def next_index(self) -> int:
        return self.first_index + len(self.records)

    def apply(self, op: StorageOp) -> None:
        match op:
            case LogAppend(records):
                self.records.extend(records)
            case LogTruncate(from_index):
                if from_index < self.first_index or from_index > self.next_index:
                    raise LocalProtocolError(
                        f"LogTruncate(from_index={from_index}) outside the log "
                        f"[{self.first_index}, {self.next_index})"
                    )
                del self.records[from_index - self.first_index :]
            case LogCompact(before_index):
                if before_index < self.first_index:
                    raise LocalProtocolError(
                        f"LogCompact(before_index={before_index}) moves the log start "
                        f"backwards from {self.first_index}"
                    )
                dropped = min(before_index - self.first_index, len(self.records))
                del self.records[:dropped]
                self.first_index = before_index
            case Put(key, value):
                if value is None:
                    self.state.pop(key, None)
                else:
                    self.state[key] = value

    def snapshot(self) -> Recovered:
        return Recovered(self.first_index, tuple(self.records), dict(self.state))

"""The MVCC key index: every key's history of revisions, and the revision -> keys index
that watches read (after etcd's ``mvcc/key_index.go`` and ``mvcc/index.go``).

Rules:

1. A key's history is a list of `Record`s ordered by revision: a put records the new
   `KeyValue`, a delete records a tombstone (``kv is None``). A key changes at most once
   per revision (a transaction may not touch one key twice), so ``main`` is strictly
   increasing along a history. A generation (etcd's term) runs from a put on an absent key
   to the next tombstone; version and create revision restart with each generation.
2. The value of a key at revision R is the last record with ``main <= R``; a tombstone or
   no record means absent.
3. Compaction at C (`KeyIndex.compact`) drops every record below C except the latest
   record ``<= C`` when it is a live value (reads at C and later stay exact); a key left
   with no record leaves the index.
4. The watch log is derived, not stored: ``by_revision[R]`` lists the keys changed at R;
   an event's previous value is the previous record of that key's history, which
   compaction never drops for any revision > C (rule 3).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

import msgspec
from sortedcontainers import SortedDict  # type: ignore[import-untyped]

from tejido.mvcc.api import Event, KeyValue

__all__ = ["KeyHistory", "KeyIndex", "Record", "in_range"]


class Record(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One change of one key: at revision ``main``, sub-revision ``sub`` (its order within
    a transaction), the new value or None for a deletion."""

    main: int
    sub: int
    kv: KeyValue | None


def _main(record: Record) -> int:
    return record.main


class KeyHistory:
    """The records of one key (rule 1)."""

    __slots__ = ("key", "records")

    def __init__(self, key: bytes, records: list[Record] | None = None) -> None:
        self.key = key
        self.records: list[Record] = records if records is not None else []

    def current(self) -> KeyValue | None:
        return self.records[-1].kv if self.records else None

    def at(self, revision: int) -> KeyValue | None:
        """Rule 2."""
        position = bisect_right(self.records, revision, key=_main)
        return self.records[position - 1].kv if position else None

    def record_at(self, revision: int) -> tuple[Record, KeyValue | None] | None:
        """The record made exactly at `revision` and the value before it."""
        position = bisect_right(self.records, revision, key=_main)
        if not position or self.records[position - 1].main != revision:
            return None
        previous = self.records[position - 2].kv if position >= 2 else None
        return self.records[position - 1], previous

    def compact(self, revision: int) -> None:
        """Rule 3."""
        position = bisect_right(self.records, revision, key=_main)
        if not position:
            return
        keep_from = position - 1 if self.records[position - 1].kv is not None else position
        del self.records[:keep_from]


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    """Whether `key` lies in etcd's range ``(start, end)`` (api rule 1)."""
    if not end:
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


class KeyIndex:
    """Every key's `KeyHistory`, sorted by key, plus the keys changed at each revision."""

    __slots__ = ("by_revision", "keys", "revisions")

    def __init__(self) -> None:
        self.keys = SortedDict()  # bytes -> KeyHistory
        self.by_revision: dict[int, list[bytes]] = {}  # keys changed, in sub-revision order
        self.revisions: list[int] = []
        """The keys of `by_revision`, ascending (revisions only grow: appends suffice)."""

    def history(self, key: bytes) -> KeyHistory | None:
        found: KeyHistory | None = self.keys.get(key)
        return found

    def histories(self, start: bytes, end: bytes) -> Iterator[KeyHistory]:
        """The histories of the keys in the range, in key order (including deleted ones)."""
        if not end:
            found = self.history(start)
            if found is not None:
                yield found
            return
        if end == b"\0":
            names = self.keys.irange(minimum=start)
        elif end <= start:
            return
        else:
            names = self.keys.irange(minimum=start, maximum=end, inclusive=(True, False))
        keys = self.keys
        for name in names:
            history: KeyHistory = keys[name]
            yield history

    def record(self, key: bytes, main: int, sub: int, kv: KeyValue | None) -> None:
        """Append a change (rule 1); the caller guarantees ``main`` increases per key."""
        history = self.history(key)
        if history is None:
            history = KeyHistory(key)
            self.keys[key] = history
        history.records.append(Record(main, sub, kv))
        self.record_revision(main, key)

    def compact(self, revision: int) -> None:
        """Rule 3 for every key; the watch log keeps only revisions above `revision`."""
        for name in list(self.keys):
            history: KeyHistory = self.keys[name]
            history.compact(revision)
            if not history.records:
                del self.keys[name]
        dropped = bisect_right(self.revisions, revision)
        for main in self.revisions[:dropped]:
            del self.by_revision[main]
        del self.revisions[:dropped]

    def rebuild_revisions(self) -> None:
        """Rebuild ``by_revision`` from the histories (after a restore)."""
        changes: list[tuple[int, int, bytes]] = []
        for name in self.keys:
            history: KeyHistory = self.keys[name]
            changes.extend((r.main, r.sub, name) for r in history.records)
        changes.sort()
        self.by_revision = {}
        self.revisions = []
        for main, _sub, name in changes:
            self.record_revision(main, name)

    def record_revision(self, main: int, key: bytes) -> None:
        changed = self.by_revision.get(main)
        if changed is None:
            self.by_revision[main] = [key]
            self.revisions.append(main)
        else:
            changed.append(key)

    def events(self, start_revision: int, start: bytes, end: bytes) -> list[Event]:
        """Every change at revision >= `start_revision` to a key in the range, ordered by
        (revision, sub-revision) (rule 4). The caller checks compaction."""
        out: list[Event] = []
        if not end:  # one key: its own history is the shorter walk
            single = self.history(start)
            if single is None:
                return out
            records = single.records
            first = bisect_left(records, start_revision, key=_main)
            for position in range(first, len(records)):
                previous = records[position - 1].kv if position else None
                out.append(event_of(start, records[position], previous))
            return out
        revisions = self.revisions
        for position in range(bisect_left(revisions, start_revision), len(revisions)):
            main = revisions[position]
            changed = self.by_revision[main]
            for name in changed:
                if not in_range(name, start, end):
                    continue
                history: KeyHistory = self.keys[name]
                found = history.record_at(main)
                if found is not None:
                    out.append(event_of(history.key, found[0], found[1]))
        return out


def event_of(key: bytes, record: Record, previous: KeyValue | None) -> Event:
    """The watch event of one record (a deletion reports the key at its revision)."""
    if record.kv is not None:
        return Event("PUT", record.kv, previous)
    return Event("DELETE", KeyValue(key, 0, record.main, 0), previous)

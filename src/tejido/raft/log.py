"""The in-memory Raft log: a snapshot point, the entries after it, and three cursors.

Rules (paper §5.3 and Figure 2; §7 for compaction):

1. Entries are contiguous: ``entries[k].index == snapshot_index + 1 + k``. The entry at
   `snapshot_index` is known only by its term (`snapshot_term`); entries before it are gone.
2. ``applied <= commit <= last_index`` except right after a restart or snapshot restore,
   when ``applied == commit == snapshot_index``. `commit` never decreases.
3. Appending entries received from a leader first finds the first *conflict* (same index,
   different term); that suffix is deleted and the rest appended. An entry at or below
   `commit` is never deleted: that would lose a committed entry (an `InvariantViolation`).
4. `persisted` is the last index whose entry is durable on this node. Deleting a suffix
   lowers it; a completed sync raises it to the last index the sync covered (the node
   caps the covered index of pending syncs when it deletes a suffix).
5. Election restriction (paper §5.4.1): a candidate's log is "at least as up-to-date" when
   its last term is higher, or equal with a last index at least as high.

6. Sizes: alongside the entries the log keeps the running total of their payload lengths,
   so the bytes of any range (`size_between`) and a byte-bounded `slice` cost O(log n),
   not a pass over the entries. The totals are extended lazily, when first asked for (only
   a leader asks), so a follower appending entries does not pay for them.
7. Kinds: the log keeps the sorted indexes of its entries that are not NORMAL (no-ops and
   configurations), so finding them in a range (`special_between`) needs no pass over it.

Storage mapping: the node keeps storage log index == Raft index (a fresh log is compacted to
start at 1), so `LogTruncate(i)` and `LogCompact(i)` take Raft indexes unchanged.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate
from operator import attrgetter

from tejido.core.errors import InvariantViolation, LocalProtocolError
from tejido.raft.types import (
    ENTRY_OVERHEAD_BYTES,
    NO_INDEX,
    NO_TERM,
    Entry,
    EntryKind,
    Index,
    Term,
)

__all__ = ["RaftLog"]

_UNCHANGED = 1 << 62
"""`RaftLog._changed_from` when no entry changed since `terms()` was last built."""

_data = attrgetter("data")
_kind = attrgetter("kind")
_NORMAL = EntryKind.NORMAL


class RaftLog:
    __slots__ = (
        "_changed_from",
        "_cum",
        "_cum_base",
        "_special",
        "_terms",
        "_terms_base",
        "applied",
        "commit",
        "entries",
        "last_index",
        "persisted",
        "snapshot_index",
        "snapshot_term",
    )

    def __init__(self, snapshot_index: Index = NO_INDEX, snapshot_term: Term = NO_TERM) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.entries: list[Entry] = []
        self.last_index = snapshot_index
        """``snapshot_index + len(entries)``, kept up to date by every change."""
        self.commit = snapshot_index
        self.applied = snapshot_index
        self.persisted = snapshot_index
        # Cache for `terms()` (checkers read it after every simulator event): the tuple of
        # terms of entries _terms_base + 1 .. and the lowest index changed since it was built.
        self._terms: tuple[Term, ...] = ()
        self._terms_base = snapshot_index
        self._changed_from = 0
        # Rule 6: _cum[k] is the total payload length of every entry up to entries[k]
        # (counted from an arbitrary origin) for k < len(_cum) <= len(entries); _cum_base
        # is the total before entries[0].
        self._cum: list[int] = []
        self._cum_base = 0
        self._special: list[Index] = []
        """Rule 7: indexes of the entries whose kind is not NORMAL, in increasing order."""

    # Reading ----------------------------------------------------------------------------
    @property
    def first_index(self) -> Index:
        return Index(self.snapshot_index + 1)

    @property
    def last_term(self) -> Term:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term_at(self, index: int) -> Term | None:
        """The term of the entry at `index`; None when compacted away or beyond the end."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self.entries[index - self.snapshot_index - 1].term

    def terms(self) -> tuple[Term, ...]:
        """Terms of the entries snapshot_index + 1 .. last_index, as a tuple.

        Rebuilt incrementally: only entries at or after the lowest index appended, deleted
        or replaced since the previous call are read again; a compaction drops a prefix."""
        base = self.snapshot_index
        changed = self._changed_from
        if changed == _UNCHANGED and base == self._terms_base:
            return self._terms
        old_base, old = self._terms_base, self._terms
        # Indexes base+1 .. reuse-1 are unchanged since the cached tuple was built.
        reuse = min(changed, old_base + len(old) + 1)
        if old_base <= base < reuse:
            prefix = old[base - old_base : reuse - old_base - 1]
        else:
            prefix, reuse = (), base + 1
        terms = prefix + tuple(e.term for e in self.entries[reuse - base - 1 :])
        self._terms, self._terms_base = terms, base
        self._changed_from = _UNCHANGED
        return terms

    def entry(self, index: int) -> Entry:
        if not self.snapshot_index < index <= self.last_index:
            raise LocalProtocolError(
                f"entry {index} outside the log ({self.snapshot_index}, {self.last_index}]"
            )
        return self.entries[index - self.snapshot_index - 1]

    def matches(self, index: int, term: int) -> bool:
        return self.term_at(index) == term

    def slice(self, start: int, max_bytes: int, end: int | None = None) -> list[Entry]:
        """Entries from `start` up to `end` (inclusive, default the last), bounded in bytes
        but always at least one entry when any is available."""
        if start <= self.snapshot_index:
            raise LocalProtocolError(f"entries from {start} are compacted")
        stop = self.last_index if end is None else min(end, self.last_index)
        if stop < start:
            return []
        lo = start - self.snapshot_index - 1
        hi = stop - self.snapshot_index
        cum = self._sizes(hi)
        before = cum[lo - 1] if lo else self._cum_base
        # The largest count n with size(entries[lo : lo + n]) <= max_bytes (at least 1).
        budget = max_bytes + before
        if cum[hi - 1] + ENTRY_OVERHEAD_BYTES * (hi - lo) <= budget:
            return self.entries[lo:hi]
        n = bisect_right(
            range(lo, hi), budget, key=lambda k: cum[k] + ENTRY_OVERHEAD_BYTES * (k - lo + 1)
        )
        return self.entries[lo : lo + max(n, 1)]

    def special_between(self, first: int, last: int) -> list[Index]:
        """Rule 7: the indexes in first..last of entries that are not NORMAL."""
        special = self._special
        if not special or special[-1] < first:
            return []
        return special[bisect_left(special, first) : bisect_right(special, last)]

    def size_between(self, first: int, last: int) -> int:
        """The bytes (`Entry.size_bytes`) of the entries `first` .. `last`; 0 when empty."""
        if last < first:
            return 0
        lo = first - self.snapshot_index - 1
        hi = last - self.snapshot_index
        if lo < 0 or hi > len(self.entries):
            raise LocalProtocolError(f"entries {first}..{last} outside the log")
        cum = self._sizes(hi)
        before = cum[lo - 1] if lo else self._cum_base
        return cum[hi - 1] - before + ENTRY_OVERHEAD_BYTES * (hi - lo)

    def _sizes(self, count: int) -> list[int]:
        """`_cum`, extended to cover at least the first `count` entries (rule 6)."""
        cum = self._cum
        have = len(cum)
        if have < count:
            cum.extend(
                accumulate(
                    map(len, map(_data, self.entries[have:])),
                    initial=cum[-1] if cum else self._cum_base,
                )
            )
            del cum[have]  # the initial value
        return cum

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Rule 5: would a candidate with this last entry get our vote?"""
        return last_term > self.last_term or (
            last_term == self.last_term and last_index >= self.last_index
        )

    def conflict_hint(self, prev_index: int) -> tuple[Term, Index]:
        """Where our log diverges from a leader's append at `prev_index` (paper §5.3 end):
        (0, last + 1) when too short; else the term we hold there and its first index here
        (not below commit + 1, where every entry is known to match)."""
        if prev_index > self.last_index:
            return Term(0), Index(self.last_index + 1)
        term = self.term_at(prev_index)
        if term is None:  # compacted: everything there is committed and matches
            return Term(0), Index(self.commit + 1)
        index = prev_index
        floor = max(self.commit + 1, self.first_index)
        while index > floor and self.term_at(index - 1) == term:
            index -= 1
        return term, Index(index)

    def last_index_of_term(self, term: int, at_most: int) -> Index | None:
        """The last index <= `at_most` holding an entry of `term`, if any."""
        index = min(at_most, self.last_index)
        while index > self.snapshot_index:
            entry_term = self.entries[index - self.snapshot_index - 1].term
            if entry_term == term:
                return Index(index)
            if entry_term < term:
                return None
            index -= 1
        return None

    # Writing ----------------------------------------------------------------------------
    def append(self, entry: Entry) -> None:
        if entry.index != self.last_index + 1:
            raise LocalProtocolError(f"append {entry.describe()} after {self.last_index}")
        self.entries.append(entry)
        self.last_index = entry.index
        if entry.kind is not _NORMAL:
            self._special.append(entry.index)
        if entry.index < self._changed_from:
            self._changed_from = entry.index

    def extend(self, entries: Sequence[Entry], kind: EntryKind | None = None) -> None:
        """Append consecutive entries (the first at ``last_index + 1``) in one step; `kind`,
        when given, is the kind of every one of them."""
        if not entries:
            return
        first = entries[0].index
        if first != self.last_index + 1 or entries[-1].index != first + len(entries) - 1:
            raise LocalProtocolError(
                f"append {entries[0].describe()}..{entries[-1].describe()} after {self.last_index}"
            )
        self.entries.extend(entries)
        self.last_index = entries[-1].index
        if kind is None:
            if any(map(_kind, entries)):  # (NORMAL is the only kind whose value is 0)
                self._special.extend(e.index for e in entries if e.kind is not _NORMAL)
        elif kind is not _NORMAL:
            self._special.extend(e.index for e in entries)
        if first < self._changed_from:
            self._changed_from = first

    def first_new(self, entries: tuple[Entry, ...] | list[Entry]) -> int:
        """Rule 3: the position in `entries` of the first one we do not already hold (a
        conflict or beyond our end); ``len(entries)`` when we hold them all."""
        for position, entry in enumerate(entries):
            if entry.index > self.snapshot_index and self.term_at(entry.index) != entry.term:
                return position
        return len(entries)

    def truncate(self, from_index: int) -> None:
        """Delete every entry at or after `from_index` (rules 3 and 4)."""
        if from_index <= self.commit:
            raise InvariantViolation(
                "committed-entry-kept",
                f"deleting entries from {from_index} with commit index {self.commit}",
            )
        del self.entries[from_index - self.snapshot_index - 1 :]
        del self._cum[from_index - self.snapshot_index - 1 :]  # (when it reaches that far)
        del self._special[bisect_left(self._special, from_index) :]
        self.last_index = Index(self.snapshot_index + len(self.entries))
        self._changed_from = min(self._changed_from, from_index)
        self.persisted = Index(min(self.persisted, from_index - 1))

    def commit_to(self, index: int) -> bool:
        """Raise the commit index (never lower it); True when it moved."""
        if index <= self.commit:
            return False
        if index > self.last_index:
            raise InvariantViolation(
                "commit-within-log", f"commit {index} beyond last index {self.last_index}"
            )
        self.commit = Index(index)
        return True

    def compact(self, through: int) -> None:
        """Forget entries up to `through` (covered by a snapshot of this log)."""
        if through <= self.snapshot_index:
            return
        term = self.term_at(through)
        if term is None or through > self.applied:
            raise LocalProtocolError(f"cannot compact through {through} (applied {self.applied})")
        self._drop_prefix(through - self.snapshot_index)
        self.snapshot_index = Index(through)
        self.snapshot_term = term

    def restore(self, index: Index, term: Term) -> None:
        """Replace everything with a snapshot at (index, term), keeping a matching suffix."""
        if self.term_at(index) == term and index <= self.last_index:
            self._drop_prefix(index - self.snapshot_index)
        else:
            self.entries = []
            self._cum = []
            self._special = []
            self.persisted = index
        self._changed_from = 0
        self.snapshot_index = index
        self.snapshot_term = term
        self.last_index = Index(index + len(self.entries))
        self.commit = Index(max(self.commit, index))
        self.applied = index
        self.persisted = Index(max(self.persisted, index))

    def _drop_prefix(self, count: int) -> None:
        if count <= 0:
            return
        self._cum_base = self._sizes(count)[count - 1]
        del self.entries[:count]
        del self._cum[:count]
        del self._special[: bisect_right(self._special, self.snapshot_index + count)]

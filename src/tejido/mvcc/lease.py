"""The leases the store's state machine knows: id, granted TTL and attached keys.

The split with the node (after etcd's ``lease/lessor.go``; etcd docs, "Lease" in
etcd.io/docs/v3.5/learning/api/ and the lessor's comments on leader changes):

1. The machine holds what is replicated: which leases exist, their granted TTL, which keys
   are attached. It never reads a clock and never expires anything on its own.
2. The leader's lessor tracks deadlines in its own memory: a keep-alive renews a deadline
   to ``now + ttl`` on the leader only (not through the log, as in etcd), and when a
   deadline passes the lessor proposes ``LeaseExpire(ids)``; applying it has the effect
   of revoking each lease that still exists.
3. After a restart or a leader change the new leader rebuilds its deadlines from
   `Leases.statuses` and gives every lease its full TTL again, as etcd does (etcd
   ``server/lease/lessor.go``, ``Lessor.Promote``: a newly promoted lessor renews every
   lease to its TTL plus an extension): a lease can outlive its TTL across a failover,
   never expire early because a new leader did not hear the keep-alives.
4. Lease ids picked by the machine (grant with id 0) come from a counter replicated in the
   snapshot, skipping ids in use, so every replica picks the same id.
"""

from __future__ import annotations

from tejido.mvcc.api import LeaseStatus

__all__ = ["Lease", "Leases"]


class Lease:
    __slots__ = ("id", "keys", "ttl")

    def __init__(self, lease_id: int, ttl: int) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.keys: set[bytes] = set()


class Leases:
    """Rules 1 and 4."""

    __slots__ = ("by_id", "next_id")

    def __init__(self) -> None:
        self.by_id: dict[int, Lease] = {}
        self.next_id = 1

    def pick_id(self) -> int:
        while self.next_id in self.by_id:
            self.next_id += 1
        picked = self.next_id
        self.next_id += 1
        return picked

    def grant(self, lease_id: int, ttl: int) -> Lease:
        lease = Lease(lease_id, ttl)
        self.by_id[lease_id] = lease
        return lease

    def attach(self, key: bytes, old: int, new: int) -> None:
        """`key` moves from lease `old` to lease `new` (0: none)."""
        if old == new:
            return
        if old and (lease := self.by_id.get(old)) is not None:
            lease.keys.discard(key)
        if new:
            self.by_id[new].keys.add(key)

    def statuses(self) -> list[LeaseStatus]:
        """Rule 3: every lease with its granted TTL, by id."""
        return [LeaseStatus(lease.id, lease.ttl) for _, lease in sorted(self.by_id.items())]

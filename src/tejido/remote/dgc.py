"""Distributed garbage collection with leases, after Java RMI's DGC (``dirty``/``clean``).

Two halves, one per side of a reference:

- `ExportTable` (the exporting node) keeps, per exported object, the *lease holders* (one
  per client node, identified by a random holder id) with their expiry times.
- `LeaseHolder` (every node that holds proxies) counts the live proxies per remote object,
  takes a lease with ``dirty`` when the first one appears, renews every lease it holds on a
  node in one ``dirty`` call every ``granted / 3`` seconds, and gives leases back with
  ``clean`` when the last proxy is released or garbage collected.

Rules (the exporting side):

1. ``dirty(ids, holder)`` sets each known object's lease for `holder` to expire
   ``lease_s`` from now (the exporting node's own duration is what is granted) and
   reports the ids it does not know (already released, or never exported).
2. ``clean(ids, holder)`` removes `holder`'s lease at once.
3. An object is *released* (unregistered from the RPC server; further calls fail with
   `NoSuchObject`) as soon as all of these hold: no unexpired lease, not pinned
   (``export(..., pin=True)``), not bound in this node's registry, and its *transit lease*
   has run out. The transit lease lasts ``lease_s`` from the last time the node handed out
   a reference to the object (an `export`, or a reference marshalled into a call or a
   result), so an object survives while its reference travels to a receiver that has yet
   to call ``dirty`` (Java RMI keeps such objects strongly reachable for the same reason).
4. Expiry is checked by one timer per object, set for the latest expiry it knows of; a
   renewal never reschedules it (the timer, when it fires, finds the later expiry and sets
   itself again).

A client that dies (killed, partitioned) stops renewing, so its leases expire and its
objects are released after at most ``lease_s``; a live client starts a renewal every third
of the granted duration, each allowed that long, so one lost or late renewal does not lose
the object (the next one still arrives in time).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.remote.interfaces import RemoteInterface, RemoteRef
from tejido.rpc import Client, RpcError, Server, UnknownMethod, call_options, method, service

__all__ = [
    "DGC",
    "ExportEvent",
    "ExportTable",
    "Exported",
    "Lease",
    "LeaseHolder",
    "NoSuchObject",
]

_log = logging.getLogger("tejido.remote")

#: Least time a first ``dirty`` or a ``clean`` may take: they are not on a renewal's clock,
#: and failing them on a busy machine only costs (a failed lookup, a lease left to expire).
MIN_CALL_TIMEOUT_S = 5.0


class NoSuchObject(UnknownMethod):
    """The remote object is gone: released by the distributed GC, or unexported."""


class Lease(msgspec.Struct, frozen=True, array_like=True):
    """What ``dirty`` grants: the lease duration, and the ids it does not know."""

    granted_s: float
    missing: list[str]


@service(name="tejido.remote.DGC")
class DGC:
    """The distributed-GC service every node serves (rules in the module docstring)."""

    @method(idempotent=True)
    async def dirty(self, object_ids: list[str], holder: str) -> Lease:
        raise NotImplementedError

    @method(idempotent=True)
    async def clean(self, object_ids: list[str], holder: str) -> None:
        raise NotImplementedError


EventKind = Literal["exported", "leased", "renewed", "cleaned", "expired", "released"]


@dataclasses.dataclass(frozen=True)
class ExportEvent:
    """Something that happened to an exported object (for logs, tests and monitoring)."""

    kind: EventKind
    object_id: str
    holder: str = ""


class Exported:
    """One exported object and what keeps it alive."""

    __slots__ = (
        "bound",
        "impl",
        "interface",
        "leases",
        "object_id",
        "pinned",
        "released",
        "timer",
        "transit_until",
    )

    def __init__(self, object_id: str, impl: object, interface: RemoteInterface, pinned: bool):
        self.object_id = object_id
        self.impl = impl
        self.interface = interface
        self.pinned = pinned
        self.bound = 0  #: names in this node's registry
        self.leases: dict[str, float] = {}  #: holder -> expiry (loop time)
        self.transit_until = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.released = asyncio.Event()


class ExportTable:
    """The exporting side of the DGC, and the RPC implementation of `DGC`."""

    def __init__(self, server: Server, lease_s: float) -> None:
        if lease_s <= 0:
            raise LocalProtocolError(f"lease_s must be positive seconds, got {lease_s}")
        self.server = server
        self.lease_s = lease_s
        self.loop = asyncio.get_running_loop()
        self.entries: dict[str, Exported] = {}
        self._by_object: dict[tuple[int, str], Exported] = {}
        self._watchers: list[Callable[[ExportEvent], None]] = []

    # ------------------------------------------------------------------ exporting
    def export(
        self, impl: object, interface: RemoteInterface, pin: bool, adapter: object
    ) -> Exported:
        """Export `impl` (once per interface: exporting it again returns the same entry)."""
        entry = self._by_object.get((id(impl), interface.name))
        if entry is not None:
            entry.pinned = entry.pinned or pin
            self.touch(entry)
            return entry
        object_id = secrets.token_urlsafe(18)
        entry = Exported(object_id, impl, interface, pin)
        self.server.add(interface.wire, adapter, object_id=object_id)
        self.entries[object_id] = entry
        self._by_object[(id(impl), interface.name)] = entry
        self._emit("exported", entry)
        self.touch(entry)
        return entry

    def lookup(self, impl: object, interface: RemoteInterface) -> Exported | None:
        return self._by_object.get((id(impl), interface.name))

    def touch(self, entry: Exported) -> None:
        """A reference to `entry` is being handed out: extend its transit lease (rule 3)."""
        entry.transit_until = self.loop.time() + self.lease_s
        self._schedule(entry, entry.transit_until)

    def bind(self, object_id: str, where: str) -> Exported:
        entry = self.entries.get(object_id)
        if entry is None:
            raise NoSuchObject(f"{where}: no exported object {object_id!r} on this node")
        entry.bound += 1
        return entry

    def unbind(self, object_id: str) -> None:
        entry = self.entries.get(object_id)
        if entry is not None:
            entry.bound -= 1
            self._check(entry)

    def unexport(self, object_id: str) -> bool:
        entry = self.entries.get(object_id)
        if entry is None:
            return False
        self._release(entry)
        return True

    # ------------------------------------------------------------------ DGC service
    async def dirty(self, object_ids: list[str], holder: str) -> Lease:
        now = self.loop.time()
        expiry = now + self.lease_s
        missing: list[str] = []
        for object_id in object_ids:
            entry = self.entries.get(object_id)
            if entry is None:
                missing.append(object_id)
                continue
            renewed = holder in entry.leases
            entry.leases[holder] = expiry
            self._schedule(entry, expiry)
            self._emit("renewed" if renewed else "leased", entry, holder)
        return Lease(self.lease_s, missing)

    async def clean(self, object_ids: list[str], holder: str) -> None:
        for object_id in object_ids:
            entry = self.entries.get(object_id)
            if entry is not None and entry.leases.pop(holder, None) is not None:
                self._emit("cleaned", entry, holder)
                self._check(entry)

    # ------------------------------------------------------------------ expiry
    def _schedule(self, entry: Exported, when: float) -> None:
        # Rule 4: a timer already set fires no later than any expiry it must see, and
        # `_check` then sets it again for the latest one.
        if entry.timer is None and not entry.released.is_set():
            entry.timer = self.loop.call_at(when, self._check, entry)

    def _check(self, entry: Exported) -> None:
        """Rule 3: release `entry` once nothing keeps it alive, else check again later."""
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        if entry.released.is_set():
            return
        now = self.loop.time()
        for holder, expiry in list(entry.leases.items()):
            if expiry <= now:
                del entry.leases[holder]
                self._emit("expired", entry, holder)
        if entry.pinned or entry.bound > 0:
            return
        latest = max([entry.transit_until, *entry.leases.values()])
        if latest > now:
            entry.timer = self.loop.call_at(latest, self._check, entry)
            return
        self._release(entry)

    def _release(self, entry: Exported) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        self.entries.pop(entry.object_id, None)
        self._by_object.pop((id(entry.impl), entry.interface.name), None)
        self.server.remove(entry.interface.name, object_id=entry.object_id)
        entry.released.set()
        self._emit("released", entry)

    def close(self) -> None:
        for entry in list(self.entries.values()):
            self._release(entry)

    # ------------------------------------------------------------------ watching
    def watch(self, callback: Callable[[ExportEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` on every `ExportEvent`; returns a function that stops it."""
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback)

    def _emit(self, kind: EventKind, entry: Exported, holder: str = "") -> None:
        if kind in ("released", "expired"):
            _log.debug("remote: %s %s %s", kind, entry.object_id, holder)
        if self._watchers:
            event = ExportEvent(kind, entry.object_id, holder)
            for watcher in list(self._watchers):
                watcher(event)


class _Holdings:
    """The leases one node holds on the objects of one other node."""

    def __init__(self, address: str, stub: DGC, granted_s: float) -> None:
        self.address = address
        self.stub = stub
        self.counts: dict[str, int] = {}
        self.granted_s = granted_s
        self.task: asyncio.Task[None] | None = None


class LeaseHolder:
    """The holding side of the DGC (rules in the module docstring)."""

    def __init__(self, client_for: Callable[[str], Client], lease_s: float) -> None:
        self.holder = secrets.token_urlsafe(12)
        self.loop = asyncio.get_running_loop()
        self._client_for = client_for
        self._lease_s = lease_s  #: until a node tells its own duration
        self._remotes: dict[str, _Holdings] = {}
        self._cleaning: set[asyncio.Task[Any]] = set()
        self.closed = False

    def _holdings(self, address: str) -> _Holdings:
        holdings = self._remotes.get(address)
        if holdings is None:
            stub = self._client_for(address).stub(DGC)
            holdings = self._remotes[address] = _Holdings(address, stub, self._lease_s)
        return holdings

    async def acquire(self, ref: RemoteRef) -> None:
        """Count one more proxy of `ref`; the first one takes a lease (or raises NoSuchObject)."""
        if self.closed:
            raise LocalProtocolError("the remote node is closed")
        holdings = self._holdings(ref.address)
        count = holdings.counts.get(ref.object_id, 0)
        holdings.counts[ref.object_id] = count + 1
        if count:
            return
        try:
            # In a task of its own: `call_options` must enter and leave in one context, and
            # a server implementation calling us may be stepped eagerly in another one.
            lease = await self.loop.create_task(
                self._dirty(holdings, [ref.object_id], max(holdings.granted_s, MIN_CALL_TIMEOUT_S))
            )
        except BaseException:
            self._forget(holdings, ref.object_id)
            raise
        holdings.granted_s = lease.granted_s
        if lease.missing:
            self._forget(holdings, ref.object_id)
            raise NoSuchObject(
                f"{ref.interface} object {ref.object_id!r} no longer exists at {ref.address} "
                "(released by the distributed GC, or unexported)"
            )
        if holdings.task is None or holdings.task.done():
            holdings.task = self.loop.create_task(self._renew(holdings))

    def _forget(self, holdings: _Holdings, object_id: str) -> None:
        count = holdings.counts.get(object_id, 0) - 1
        if count > 0:
            holdings.counts[object_id] = count
        else:
            holdings.counts.pop(object_id, None)

    def release(self, ref: RemoteRef) -> None:
        """One proxy of `ref` is gone; the last one gives the lease back (``clean``)."""
        holdings = self._remotes.get(ref.address)
        if holdings is None or ref.object_id not in holdings.counts:
            return
        self._forget(holdings, ref.object_id)
        if ref.object_id not in holdings.counts and not self.closed:
            task = self.loop.create_task(self._clean(holdings, [ref.object_id]))
            self._cleaning.add(task)
            task.add_done_callback(self._cleaning.discard)

    def release_threadsafe(self, ref: RemoteRef) -> None:
        """`release` from any thread (proxies are finalized wherever the GC runs)."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile: the leases will expire
            self.loop.call_soon_threadsafe(self.release, ref)

    def held(self, address: str) -> list[str]:
        """The object ids this node holds leases on at `address`."""
        holdings = self._remotes.get(address)
        return sorted(holdings.counts) if holdings is not None else []

    async def _dirty(self, holdings: _Holdings, object_ids: list[str], timeout_s: float) -> Lease:
        with call_options(timeout=timeout_s):
            return await holdings.stub.dirty(object_ids, self.holder)

    async def _clean(self, holdings: _Holdings, object_ids: list[str]) -> None:
        try:
            with call_options(timeout=max(holdings.granted_s, MIN_CALL_TIMEOUT_S)):
                await holdings.stub.clean(object_ids, self.holder)
        except RpcError as exc:
            _log.info(
                "remote: clean at %s failed (the lease will expire): %s", holdings.address, exc
            )

    async def _renew(self, holdings: _Holdings) -> None:
        """Renew every lease held at one node, every third of the granted duration.

        A renewal starts one period after the previous one started (not after it ended) and
        may take one period: when one is lost or times out, the next starts at once, with a
        whole period left before the lease runs out.
        """
        started = self.loop.time()
        while holdings.counts and not self.closed:
            period = holdings.granted_s / 3
            await asyncio.sleep(max(0.0, started + period - self.loop.time()))
            object_ids = sorted(holdings.counts)
            if not object_ids:
                break
            started = self.loop.time()
            try:
                lease = await self._dirty(holdings, object_ids, period)
            except RpcError as exc:
                _log.warning("remote: lease renewal at %s failed: %s", holdings.address, exc)
                continue
            holdings.granted_s = lease.granted_s
            for object_id in lease.missing:
                # Released meanwhile (we were cut off for longer than the lease): stop
                # renewing; the proxies' calls fail with NoSuchObject.
                holdings.counts.pop(object_id, None)

    async def close(self) -> None:
        """Give back every lease (best effort) and stop renewing."""
        self.closed = True
        cleans = []
        for holdings in self._remotes.values():
            if holdings.task is not None:
                holdings.task.cancel()
            if holdings.counts:
                cleans.append(self._clean(holdings, sorted(holdings.counts)))
            holdings.counts.clear()
        if cleans:
            await asyncio.gather(*cleans, return_exceptions=True)
        for task in list(self._cleaning):
            task.cancel()

"""A remote-object node: an RPC server for exported objects plus clients to other nodes.

``node = await start("127.0.0.1:0")`` serves, on one port, the objects this node exports,
the distributed-GC service (`tejido.remote.dgc`) and a naming registry
(`tejido.remote.registry`). ``ref = node.export(obj, Iface)`` publishes an object;
``await node.proxy(ref, Iface)`` or ``await node.lookup(name, Iface)`` gives a proxy typed as
``Iface``. Rules:

1. **Object ids** are unguessable (``secrets.token_urlsafe``); exporting the same object
   again under the same interface returns the same reference.
2. **References resolve locally when they can**: a reference to an object this node
   exported comes back as the object itself, not as a proxy (so a callback a node passes
   away and gets back is its own object). A reference to an object that is gone fails with
   `NoSuchObject`.
3. **One proxy per reference**: while a proxy of a reference is alive the node hands out
   that same proxy, and holds one lease on the object for it (`tejido.remote.dgc`). When
   the proxy is garbage collected, or given up with `release(proxy)`, the lease is given
   back.
4. **Threads**: the node lives on the event loop it was started on. `export`, `proxy` and
   the naming calls must run there; proxies may be called from anywhere (see
   `tejido.remote.proxy`), and `tejido.remote.blocking` wraps everything for code without
   an event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import ssl as ssl_module
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

from tejido.core.errors import LocalProtocolError
from tejido.remote.dgc import DGC, ExportEvent, ExportTable, LeaseHolder, NoSuchObject
from tejido.remote.interfaces import RemoteInterface, RemoteRef, interface_of
from tejido.remote.proxy import Proxy, adapter_class, proxy_class
from tejido.remote.registry import Registry, RegistryImpl
from tejido.rpc import BadArguments, Client, Server

__all__ = ["DEFAULT_LEASE_S", "RemoteNode", "start"]

T = TypeVar("T")

#: Lease duration a node grants by default (Java RMI's default is ten minutes; objects of a
#: dead client linger that long, so tejido picks something closer to its failure detectors).
DEFAULT_LEASE_S = 10.0


def _check_implements(impl: object, interface: RemoteInterface) -> None:
    for attr in interface.methods:
        fn = getattr(impl, attr, None)
        declared = getattr(interface.interface, attr)
        if fn is None or not callable(fn) or getattr(type(impl), attr, None) is declared:
            raise BadArguments(
                f"{type(impl).__name__} does not implement {interface.name}.{attr} "
                f"(expected a proxy of {interface.name} or an object implementing it)"
            )


class RemoteNode:
    """See the module docstring; make one with `start`."""

    def __init__(
        self,
        server: Server,
        *,
        lease_s: float,
        registry: str | None,
        cluster: str,
        client_ssl: ssl_module.SSLContext | None,
        server_hostname: str | None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.server = server
        self.address = ""  #: ``HOST:PORT`` other nodes reach this one at (set by `start`)
        self.cluster = cluster
        self._client_ssl = client_ssl
        self._server_hostname = server_hostname
        self._clients: dict[str, Client] = {}
        self.exports = ExportTable(server, lease_s)
        self.leases = LeaseHolder(self._client, lease_s)
        self._proxies: weakref.WeakValueDictionary[RemoteRef, Proxy] = weakref.WeakValueDictionary()
        self._pending: dict[RemoteRef, asyncio.Task[Proxy]] = {}
        self._registry_address = registry
        self.registry = RegistryImpl(self)
        server.add(DGC, self.exports)
        server.add(Registry, self.registry)
        self.closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _on_loop(self, what: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            raise LocalProtocolError(
                f"{what} must run on the node's event loop (from another thread, use "
                "tejido.remote.blocking)"
            )
        if self.closed:
            raise LocalProtocolError(f"{what}: the node is closed")

    def _client(self, address: str) -> Client:
        client = self._clients.get(address)
        if client is None:
            client = Client(
                address,
                cluster=self.cluster,
                ssl=self._client_ssl,
                server_hostname=self._server_hostname,
            )
            self._clients[address] = client
        return client

    # ------------------------------------------------------------------ exporting
    def export(self, obj: object, interface: type, *, pin: bool = False) -> RemoteRef:
        """Publish `obj` as `interface` and return its reference.

        Unless `pin` is set (or the object is bound in this node's registry), the object is
        released once no node holds a lease on it and ``lease_s`` has passed since its
        reference was last handed out (`tejido.remote.dgc`, rule 3).
        """
        self._on_loop("export")
        described = interface_of(interface)
        entry = self.exports.lookup(obj, described)
        if entry is None:
            _check_implements(obj, described)
            entry = self.exports.export(obj, described, pin, adapter_class(described)(obj, self))
        else:
            entry.pinned = entry.pinned or pin
            self.exports.touch(entry)
        return RemoteRef(self.address, entry.object_id, described.name)

    def unexport(self, target: RemoteRef | object, interface: type | None = None) -> bool:
        """Stop serving an object now (by ref, or the object and its interface)."""
        self._on_loop("unexport")
        if isinstance(target, RemoteRef):
            return target.address == self.address and self.exports.unexport(target.object_id)
        if interface is None:
            raise LocalProtocolError("unexport(obj) needs the interface it was exported as")
        entry = self.exports.lookup(target, interface_of(interface))
        return entry is not None and self.exports.unexport(entry.object_id)

    def marshal(self, value: object, interface: type) -> RemoteRef:
        """The reference that stands for `value` when it is passed as `interface`."""
        described = interface_of(interface)
        if isinstance(value, RemoteRef):
            ref = value
        elif isinstance(value, Proxy):
            ref = value._tejido_ref
        else:
            return self.export(value, interface)
        if ref.interface != described.name:
            raise BadArguments(f"{ref} is a reference to a {ref.interface}, not a {described.name}")
        if ref.address == self.address:
            entry = self.exports.entries.get(ref.object_id)
            if entry is not None:
                self.exports.touch(entry)
        return ref

    async def unmarshal(self, ref: RemoteRef, interface: type) -> object:
        """The object a reference stands for: a proxy, or the object itself if it is local."""
        described = interface_of(interface)
        if ref.interface != described.name:
            raise BadArguments(f"{ref} is a reference to a {ref.interface}, not a {described.name}")
        if ref.address == self.address:
            entry = self.exports.entries.get(ref.object_id)
            if entry is None:
                raise NoSuchObject(
                    f"{ref.interface} object {ref.object_id!r} no longer exists on this node"
                )
            return entry.impl
        proxy = self._proxies.get(ref)
        if proxy is not None:
            return proxy
        # One lease per proxy: concurrent requests for a new reference share one creation.
        pending = self._pending.get(ref)
        if pending is None:
            pending = self._pending[ref] = self._loop.create_task(self._new_proxy(ref, described))
            pending.add_done_callback(lambda _: self._pending.pop(ref, None))
        return await asyncio.shield(pending)

    async def _new_proxy(self, ref: RemoteRef, described: RemoteInterface) -> Proxy:
        await self.leases.acquire(ref)
        stub: object = self._client(ref.address).stub(described.wire, object_id=ref.object_id)
        proxy = proxy_class(described)(ref, self, stub)
        proxy._tejido_finalizer = weakref.finalize(proxy, self.leases.release_threadsafe, ref)
        self._proxies[ref] = proxy
        return proxy

    def drop(self, proxy: Proxy) -> None:
        """`proxy` was released: stop handing it out and give its lease back."""
        ref = proxy._tejido_ref
        if self._proxies.get(ref) is proxy:
            del self._proxies[ref]
        self.leases.release(ref)

    async def proxy(self, ref: RemoteRef, interface: type[T]) -> T:
        """A proxy of the object `ref` names (rule 2: the object itself if it is local)."""
        self._on_loop("proxy")
        return cast(T, await self.unmarshal(ref, interface))

    # ------------------------------------------------------------------ naming
    def _naming(self) -> Registry:
        address = self._registry_address or self.address
        return self._client(address).stub(Registry)

    def _ref(self, target: object, interface: type | None) -> RemoteRef:
        if isinstance(target, RemoteRef):
            return target
        if isinstance(target, Proxy):
            return target._tejido_ref
        if interface is None:
            raise LocalProtocolError(
                f"binding a local {type(target).__name__} needs the interface to export it as"
            )
        return self.export(target, interface)

    async def bind(self, name: str, target: object, interface: type | None = None) -> RemoteRef:
        """Bind `name` to a ref, a proxy, or a local object (exported as `interface`)."""
        self._on_loop("bind")
        ref = self._ref(target, interface)
        await self._naming().bind(name, ref)
        return ref

    async def rebind(self, name: str, target: object, interface: type | None = None) -> RemoteRef:
        """Like `bind`, replacing whatever `name` was bound to."""
        self._on_loop("rebind")
        ref = self._ref(target, interface)
        await self._naming().rebind(name, ref)
        return ref

    async def lookup(self, name: str, interface: type[T]) -> T:
        """A proxy of the object bound to `name` (raises `NotBound` if there is none)."""
        self._on_loop("lookup")
        ref = await self._naming().lookup(name)
        described = interface_of(interface)
        if ref.interface != described.name:
            raise BadArguments(f"{name!r} is bound to a {ref.interface}, not a {described.name}")
        return cast(T, await self.unmarshal(ref, interface))

    async def list(self) -> builtins.list[str]:
        """The names bound in the registry."""
        self._on_loop("list")
        return await self._naming().list()

    async def unbind(self, name: str) -> None:
        self._on_loop("unbind")
        await self._naming().unbind(name)

    # the registry's hold on bound objects (tejido.remote.registry, rule 2)
    async def hold(self, ref: RemoteRef) -> None:
        if ref.address == self.address:
            self.exports.bind(ref.object_id, "bind")
        else:
            await self.leases.acquire(ref)

    def let_go(self, ref: RemoteRef) -> None:
        if ref.address == self.address:
            self.exports.unbind(ref.object_id)
        else:
            self.leases.release(ref)

    # ------------------------------------------------------------------ watching
    def is_exported(self, ref: RemoteRef) -> bool:
        return ref.address == self.address and ref.object_id in self.exports.entries

    def lease_holders(self, ref: RemoteRef) -> builtins.list[str]:
        """The holder ids with a lease on one of this node's objects (empty if released)."""
        entry = self.exports.entries.get(ref.object_id)
        return sorted(entry.leases) if entry is not None else []

    @property
    def holder(self) -> str:
        """The id this node's leases are held under on other nodes."""
        return self.leases.holder

    def watch(self, callback: Callable[[ExportEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` on every export, lease, renewal, expiry and release."""
        return self.exports.watch(callback)

    async def wait_released(self, ref: RemoteRef) -> None:
        """Wait until the object `ref` names is released (at once if it already is)."""
        entry = self.exports.entries.get(ref.object_id)
        if entry is not None:
            await entry.released.wait()

    # ------------------------------------------------------------------ lifecycle
    async def close(self) -> None:
        """Give back held leases, release every export, close connections and the server."""
        if self.closed:
            return
        self.closed = True
        await self.leases.close()
        self.registry.clear()
        self.exports.close()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self.server.close()

    async def __aenter__(self) -> RemoteNode:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def start(
    address: str = "127.0.0.1:0",
    *,
    lease_s: float = DEFAULT_LEASE_S,
    registry: str | None = None,
    advertise: str | None = None,
    cluster: str = "tejido",
    ssl: ssl_module.SSLContext | None = None,
    client_ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    **server_options: Any,
) -> RemoteNode:
    """Start a node listening on ``HOST:PORT`` (port 0 picks a free one).

    `lease_s` is the lease this node grants on its objects; `registry` is the address of
    the node whose registry `bind`/`lookup` use (default: this node's own); `advertise` is
    the address put in this node's references (default: the address it listens on).
    """
    server = Server(cluster=cluster, **server_options)
    node = RemoteNode(
        server,
        lease_s=lease_s,
        registry=registry,
        cluster=cluster,
        client_ssl=client_ssl,
        server_hostname=server_hostname,
    )
    await server.listen(address, ssl=ssl)
    node.address = advertise or server.address
    return node

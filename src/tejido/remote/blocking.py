"""Remote objects for code without an event loop: a node on a background thread.

``node = tejido.remote.blocking.start()`` runs a `RemoteNode` on its own thread and event
loop; ``counter = node.lookup("counter", Counter)`` returns a `BlockingProxy` whose methods
block: ``counter.add(2)``. Every call is handed to the node's loop
(`tejido.remote.proxy.submit`) and waited for, so blocking nodes and proxies are safe to
share between threads. ``wrap(proxy)`` gives the blocking view of an async proxy whose node
runs on another thread.

Typing: mypy cannot turn ``async def`` signatures into blocking ones, so the per-method
attributes are typed loosely; ``proxy.call(lambda c: c.add(2))`` is the fully typed form
(it runs the lambda on the node's loop with the async proxy).

Calling a blocking proxy *on* the node's own loop thread (from an implementation the node
serves) would wait for itself forever; it raises `LocalProtocolError` instead.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from tejido.core.errors import LocalProtocolError
from tejido.remote.interfaces import RemoteRef, interface_of, is_remote
from tejido.remote.node import RemoteNode
from tejido.remote.node import start as start_node
from tejido.remote.proxy import Proxy, release, submit
from tejido.rpc import new_event_loop

__all__ = ["BlockingNode", "BlockingProxy", "start", "wrap"]

T = TypeVar("T")
R = TypeVar("R")


def _wait(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, R]) -> R:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise LocalProtocolError(
            "a blocking remote call was made on the node's own event loop thread (it would "
            "wait for itself); await the async proxy there instead"
        )
    return submit(loop, coro).result()


class BlockingProxy(Generic[T]):
    """Blocking view of a proxy; methods as the interface's, without ``await``."""

    def __init__(self, proxy: T, node: RemoteNode | None = None) -> None:
        if isinstance(proxy, Proxy):
            self._loop = proxy._tejido_host.loop
            described = proxy._tejido_interface
        elif node is not None:  # a local object (a reference that came back home)
            self._loop = node.loop
            described = next(
                interface_of(klass) for klass in type(proxy).__mro__ if is_remote(klass)
            )
        else:
            raise LocalProtocolError(f"{proxy!r} is not a remote proxy")
        self.proxy = proxy
        for attr, method in described.methods.items():
            if method.spec.kind in ("unary", "oneway"):
                setattr(self, attr, self._wrap(attr))

    @property
    def ref(self) -> RemoteRef:
        """The reference of a proxy (a local object has none: use `BlockingNode.export`)."""
        if not isinstance(self.proxy, Proxy):
            raise LocalProtocolError(f"{self.proxy!r} is a local object, not a proxy")
        return self.proxy._tejido_ref

    def _wrap(self, attr: str) -> Callable[..., Any]:
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return _wait(self._loop, getattr(self.proxy, attr)(*args, **kwargs))

        blocking.__name__ = attr
        return blocking

    def call(self, fn: Callable[[T], Awaitable[R]]) -> R:
        """Run ``fn(async_proxy)`` on the node's loop and return its result (fully typed)."""

        async def main() -> R:
            return await fn(self.proxy)

        return _wait(self._loop, main())

    def release(self) -> None:
        """Give up the lease now (see `tejido.remote.release`; nothing for a local object)."""
        if isinstance(self.proxy, Proxy):
            release(self.proxy)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Only reached for names that are not unary or oneway methods of the interface.
        raise AttributeError(f"{type(self.proxy).__name__} has no blocking method {name!r}")

    def __repr__(self) -> str:
        return f"<blocking {self.proxy!r}>"


def wrap(proxy: T) -> BlockingProxy[T]:
    """The blocking view of an async proxy (its node must run on another thread)."""
    return BlockingProxy(proxy)


class BlockingNode:
    """A `RemoteNode` on a background thread; every method blocks until done."""

    def __init__(self, address: str = "127.0.0.1:0", **options: Any) -> None:
        self._loop = new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tejido-remote", daemon=True
        )
        self._thread.start()
        try:
            self.node: RemoteNode = submit(self._loop, start_node(address, **options)).result()
        except BaseException:
            self._stop()
            raise

    def _run(self, coro: Coroutine[Any, Any, R]) -> R:
        return _wait(self._loop, coro)

    @property
    def address(self) -> str:
        return self.node.address

    def export(self, obj: object, interface: type, *, pin: bool = False) -> RemoteRef:
        async def main() -> RemoteRef:
            return self.node.export(obj, interface, pin=pin)

        return self._run(main())

    def proxy(self, ref: RemoteRef, interface: type[T]) -> BlockingProxy[T]:
        return BlockingProxy(self._run(self.node.proxy(ref, interface)), self.node)

    def lookup(self, name: str, interface: type[T]) -> BlockingProxy[T]:
        return BlockingProxy(self._run(self.node.lookup(name, interface)), self.node)

    def bind(self, name: str, target: object, interface: type | None = None) -> RemoteRef:
        return self._run(self.node.bind(name, target, interface))

    def rebind(self, name: str, target: object, interface: type | None = None) -> RemoteRef:
        return self._run(self.node.rebind(name, target, interface))

    def unbind(self, name: str) -> None:
        self._run(self.node.unbind(name))

    def list(self) -> builtins.list[str]:
        return self._run(self.node.list())

    def close(self) -> None:
        """Close the node and stop its thread."""
        if self._loop.is_closed():
            return
        try:
            self._run(self.node.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> BlockingNode:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start(address: str = "127.0.0.1:0", **options: Any) -> BlockingNode:
    """Start a `RemoteNode` on a background thread (options as for `tejido.remote.start`)."""
    return BlockingNode(address, **options)

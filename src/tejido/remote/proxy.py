"""Proxies (the calling side of a remote object) and adapters (its serving side).

- A *proxy* of remote interface ``I`` is an instance of a generated subclass of ``I`` (so
  ``isinstance(proxy, I)`` holds and type checkers see ``I``'s methods). Each unary or
  oneway method turns its remote-typed arguments into `RemoteRef`s (exporting local
  objects on the way), makes the RPC call to the object's id on its node, and turns
  remote-typed results back into proxies. Streaming methods are plain RPC streams.
- An *adapter* is what the RPC server actually registers for an exported object: it turns
  incoming refs into proxies (or into the local object, for refs to this very node),
  calls the implementation, and turns a remote-typed result into a ref.

Rules:

1. **Any task, any thread, any loop.** A proxy's calls run on its node's event loop. Awaited
   on another loop (another thread), the call is handed to the node's loop and awaited
   from there, with the caller's context (`call_options`, deadline propagation) carried
   along; cancelling the waiting task cancels the call.
2. A call to an object that is gone (released, unexported, or its node restarted) fails
   with `NoSuchObject` naming the object.
3. Proxies compare equal (and hash) by their `RemoteRef`; one node keeps at most one live
   proxy per reference (see `tejido.remote.node`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from tejido.core.errors import LocalProtocolError
from tejido.remote.dgc import NoSuchObject
from tejido.remote.interfaces import Marshal, RemoteInterface, RemoteMethod, RemoteRef, Unmarshal
from tejido.rpc import BadArguments, Unavailable, UnknownMethod

__all__ = ["Host", "Proxy", "adapter_class", "proxy_class", "ref_of", "release", "submit"]

T = TypeVar("T")


class Host(Protocol):
    """What proxies and adapters need from their node."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def marshal(self, value: object, interface: type) -> RemoteRef: ...

    async def unmarshal(self, ref: RemoteRef, interface: type) -> object: ...

    def drop(self, proxy: Proxy) -> None: ...


def submit(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]
) -> concurrent.futures.Future[T]:
    """Run `coro` as a task on `loop` (from any thread) in a copy of the caller's context.

    Cancelling the returned future cancels the task.
    """
    context = contextvars.copy_context()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def finish(task: asyncio.Task[T]) -> None:
        if done.cancelled():
            return
        try:
            if task.cancelled():
                done.cancel()
            elif task.exception() is not None:
                done.set_exception(task.exception())
            else:
                done.set_result(task.result())
        except concurrent.futures.InvalidStateError:
            pass  # cancelled by the caller meanwhile

    def start() -> None:
        if done.cancelled():
            coro.close()
            return
        task = loop.create_task(coro, context=context)
        task.add_done_callback(finish)
        done.add_done_callback(
            lambda future: loop.call_soon_threadsafe(task.cancel) if future.cancelled() else None
        )

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:
        coro.close()
        raise Unavailable("the remote node's event loop is closed") from None
    return done


async def _hop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return await asyncio.wrap_future(submit(loop, coro))


class Proxy:
    """Base class of every generated proxy class (see the module docstring)."""

    _tejido_interface: RemoteInterface  #: set on each generated class
    _tejido_ref: RemoteRef
    _tejido_host: Host
    _tejido_stub: Any
    _tejido_finalizer: weakref.finalize[Any, Any]

    def __init__(self, ref: RemoteRef, host: Host, stub: object) -> None:
        self._tejido_ref = ref
        self._tejido_host = host
        self._tejido_stub = stub

    def __repr__(self) -> str:
        return f"<proxy {self._tejido_ref}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Proxy):
            return self._tejido_ref == other._tejido_ref
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._tejido_ref)


def ref_of(proxy: object) -> RemoteRef:
    """The `RemoteRef` a proxy stands for."""
    if not isinstance(proxy, Proxy):
        raise LocalProtocolError(f"{proxy!r} is not a remote proxy")
    return proxy._tejido_ref


def release(proxy: object) -> None:
    """Give up this proxy's lease now instead of when it is garbage collected.

    The proxy (and every other reference to the same proxy object) must not be used
    afterwards: its calls may find the object released.
    """
    if not isinstance(proxy, Proxy):
        raise LocalProtocolError(f"{proxy!r} is not a remote proxy")
    finalizer = getattr(proxy, "_tejido_finalizer", None)
    if finalizer is None or finalizer.detach() is None:
        return  # released already
    host = proxy._tejido_host
    try:
        on_loop = asyncio.get_running_loop() is host.loop
    except RuntimeError:
        on_loop = False
    if on_loop:
        host.drop(proxy)
    else:
        with contextlib.suppress(RuntimeError):  # the node's loop is closed: nothing to do
            host.loop.call_soon_threadsafe(host.drop, proxy)


_proxy_classes: dict[type, type[Proxy]] = {}
_adapter_classes: dict[type, type] = {}


def proxy_class(interface: RemoteInterface) -> type[Proxy]:
    """The proxy class of a remote interface (generated once)."""
    cls = _proxy_classes.get(interface.interface)
    if cls is None:
        namespace: dict[str, Any] = {
            attr: _proxy_method(m) for attr, m in interface.methods.items()
        }
        namespace["_tejido_interface"] = interface
        cls = type(f"{interface.interface.__name__}Proxy", (Proxy, interface.interface), namespace)
        _proxy_classes[interface.interface] = cls
    return cls


def _wrong_argument(where: str, name: str, exc: Exception) -> BadArguments:
    return BadArguments(f"{where}: parameter {name!r}: {exc}")


def _proxy_method(method: RemoteMethod) -> Callable[..., Any]:
    attr = method.attr
    where = f"{method.spec.name}"
    if method.spec.kind not in ("unary", "oneway"):

        def streaming(self: Proxy, *args: Any, **kwargs: Any) -> Any:
            return getattr(self._tejido_stub, attr)(*args, **kwargs)

        streaming.__name__ = attr
        return streaming

    names, plans, result_plan = method.params, method.plans, method.result
    signature = method.signature
    converts = method.converts

    async def call(self: Proxy, *args: Any, **kwargs: Any) -> Any:
        host = self._tejido_host
        if asyncio.get_running_loop() is not host.loop:
            return await _hop(host.loop, call(self, *args, **kwargs))
        ref = self._tejido_ref
        if converts:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise BadArguments(f"{ref.interface}.{where}: {exc}") from None
            bound.apply_defaults()
            wire: list[Any] = []
            for name, plan in zip(names, plans, strict=True):
                value = bound.arguments[name]
                if plan is not None:
                    try:
                        value = plan.to_wire(value, host.marshal)
                    except BadArguments as exc:
                        raise _wrong_argument(f"{ref.interface}.{where}", name, exc) from None
                wire.append(value)
            args, kwargs = tuple(wire), {}
        try:
            value = await getattr(self._tejido_stub, attr)(*args, **kwargs)
        except UnknownMethod as exc:
            raise NoSuchObject(
                f"{ref.interface} object {ref.object_id!r} no longer exists at {ref.address} "
                f"(released by the distributed GC, or unexported): {exc}"
            ) from None
        if result_plan is not None:
            value = await result_plan.from_wire(value, host.unmarshal)
        return value

    call.__name__ = attr
    return call


class _Adapter:
    __slots__ = ("_host", "_impl")

    def __init__(self, impl: object, host: Host) -> None:
        self._impl = impl
        self._host = host


def adapter_class(interface: RemoteInterface) -> type:
    """The class whose instances the RPC server registers for exported objects."""
    cls = _adapter_classes.get(interface.interface)
    if cls is None:
        namespace = {attr: _serve_method(m) for attr, m in interface.methods.items()}
        cls = type(f"{interface.interface.__name__}Adapter", (_Adapter,), namespace)
        _adapter_classes[interface.interface] = cls
    return cls


def _serve_method(method: RemoteMethod) -> Callable[..., Any]:
    attr = method.attr
    kind = method.spec.kind
    if kind in ("server_stream", "bidi_stream"):

        def stream(self: _Adapter, *args: Any, **kwargs: Any) -> Any:
            return getattr(self._impl, attr)(*args, **kwargs)

        return stream
    if not method.converts:

        async def plain(self: _Adapter, *args: Any, **kwargs: Any) -> Any:
            return await getattr(self._impl, attr)(*args, **kwargs)

        return plain
    plans, result_plan = method.plans, method.result

    async def converting(self: _Adapter, *args: Any) -> Any:
        unmarshal: Unmarshal = self._host.unmarshal
        values = [
            arg if plan is None else await plan.from_wire(arg, unmarshal)
            for plan, arg in zip(plans, args, strict=True)
        ]
        result = await getattr(self._impl, attr)(*values)
        if result_plan is None:
            return result
        marshal: Marshal = self._host.marshal
        return result_plan.to_wire(result, marshal)

    return converting

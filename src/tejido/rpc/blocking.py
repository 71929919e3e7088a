"""Blocking stubs, for code without an event loop.

``calc = connect_blocking(Calculator, "127.0.0.1:7000")`` starts one background thread
running its own event loop (uvloop when installed); that loop owns the connection, and every
method call from any thread is handed to it with `asyncio.run_coroutine_threadsafe` and
waited for, so a blocking stub is safe to share between threads. ``calc.add(1, 2)`` returns
``3``. Server-streaming methods return a plain iterator; client-streaming methods accept a
plain iterable too.

Typing: mypy cannot turn an interface's ``async def`` signatures into blocking ones, so the
per-method attributes are typed loosely (``Callable[..., Any]``); `Blocking.call` is the
fully typed alternative: ``calc.call(lambda c: c.add(1, 2))`` is an ``int`` to mypy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from tejido.rpc.channel import ServerStream
from tejido.rpc.client import client_of, connect
from tejido.rpc.loop import new_event_loop
from tejido.rpc.service import ServiceSpec, describe_service

__all__ = ["Blocking", "connect_blocking"]

T = TypeVar("T")
R = TypeVar("R")
_END = object()


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


class Blocking(Generic[T]):
    """A stub whose methods block; see the module docstring."""

    def __init__(self, interface: type[T], address: str | list[str], **options: Any) -> None:
        self._spec: ServiceSpec = describe_service(interface)
        self._loop = new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tejido-rpc {self._spec.name}", daemon=True
        )
        self._thread.start()
        try:
            self.stub: T = self._run(connect(interface, address, **options))
        except BaseException:
            self._stop_loop()
            raise
        for method in self._spec.methods.values():
            setattr(self, method.attr, self._wrap(method.attr, method.kind, method.stream_param))

    def _run(self, coro: Awaitable[R]) -> R:
        async def main() -> R:
            return await coro

        return asyncio.run_coroutine_threadsafe(main(), self._loop).result()

    def call(self, fn: Callable[[T], Awaitable[R]]) -> R:
        """Run ``fn(async_stub)`` on the client's loop and return its result (fully typed)."""

        async def main() -> R:
            return await fn(self.stub)

        return asyncio.run_coroutine_threadsafe(main(), self._loop).result()

    def _wrap(self, attr: str, kind: str, stream_param: str | None) -> Callable[..., Any]:
        def fix(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
            if stream_param is None:
                return args
            if stream_param in kwargs:
                if not hasattr(kwargs[stream_param], "__aiter__"):
                    kwargs[stream_param] = _aiter(kwargs[stream_param])
                return args
            converted = list(args)
            for index, value in enumerate(converted):
                if isinstance(value, Iterable) and not isinstance(value, str | bytes):
                    converted[index] = _aiter(value)
            return tuple(converted)

        if kind in ("server_stream", "bidi_stream"):

            def streaming(*args: Any, **kwargs: Any) -> Iterator[Any]:
                args = fix(args, kwargs)

                async def open_stream() -> ServerStream[Any]:
                    stream: ServerStream[Any] = getattr(self.stub, attr)(*args, **kwargs)
                    return await stream

                stream = self._run(open_stream())

                async def step() -> Any:
                    try:
                        return await stream.__anext__()
                    except StopAsyncIteration:
                        return _END

                try:
                    while True:
                        item = self._run(step())
                        if item is _END:
                            return
                        yield item
                finally:
                    self._run(stream.aclose())

            return streaming

        def blocking(*args: Any, **kwargs: Any) -> Any:
            args = fix(args, kwargs)
            return self.call(lambda stub: getattr(stub, attr)(*args, **kwargs))

        return blocking

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Only reached for names that are not methods of the interface.
        raise AttributeError(f"{self._spec.name} has no method {name!r}")

    def close(self) -> None:
        """Close the connection and stop the background loop."""
        if self._loop.is_closed():
            return
        try:
            self._run(client_of(self.stub).close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Blocking[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect_blocking(interface: type[T], address: str | list[str], **options: Any) -> Blocking[T]:
    """A blocking stub of `interface` (options as for `tejido.rpc.connect`)."""
    return Blocking(interface, address, **options)

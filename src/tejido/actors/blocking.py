"""A blocking facade for code without an event loop.

``with BlockingActorSystem("app") as system:`` starts one background thread running an
event loop (uvloop when installed) with an `ActorSystem` on it. ``ref = system.spawn(Cls)``
returns a `BlockingRef[M]` whose ``tell`` hands the message to the loop thread
(``call_soon_threadsafe``) and whose ``ask`` blocks the calling thread until the reply, the
`AskTimeout` or another ask error. Any number of threads may share one facade. Calling the
blocking methods from the loop thread itself (from inside an actor) would wait for itself,
so they raise `WrongThread` there. Leaving the block stops the actors (draining their
mailboxes) and the thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, overload

from tejido.actors.actor import Actor
from tejido.actors.errors import WrongThread
from tejido.actors.mailbox import MailboxConfig
from tejido.actors.ref import DEFAULT_ASK_TIMEOUT_S, ActorRef
from tejido.actors.routers import Routing
from tejido.actors.supervision import SupervisorStrategy
from tejido.actors.system import ActorSystem
from tejido.rpc.loop import new_event_loop

__all__ = ["BlockingActorSystem", "BlockingRef"]

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)
R = TypeVar("R")


class BlockingRef(Generic[M_contra]):
    """An actor reference whose ``ask`` and ``stop`` block (see the module docstring)."""

    __slots__ = ("_facade", "ref")

    def __init__(self, facade: BlockingActorSystem, ref: ActorRef[M_contra]) -> None:
        self._facade = facade
        self.ref = ref

    def tell(self, message: M_contra) -> None:
        self._facade.loop.call_soon_threadsafe(self.ref.tell, message)

    @overload
    def ask(self, message: M_contra, *, timeout: float = ...) -> Any: ...

    @overload
    def ask(self, message: M_contra, *, timeout: float = ..., expect: type[R]) -> R: ...

    def ask(
        self,
        message: M_contra,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT_S,
        expect: type[Any] | None = None,
    ) -> Any:
        if expect is None:
            return self._facade.run(self.ref.ask(message, timeout=timeout))
        return self._facade.run(self.ref.ask(message, timeout=timeout, expect=expect))

    def stop(self, *, drain: bool = True) -> None:
        self._facade.run(self.ref.stop(drain=drain))


class BlockingActorSystem:
    """An `ActorSystem` on its own loop thread (see the module docstring)."""

    def __init__(self, name: str = "tejido", **options: Any) -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name=f"tejido-actors {name}", daemon=True
        )
        self._thread.start()
        self.system = ActorSystem(name, **options)
        try:
            self.run(self.system.start())
        except BaseException:
            self._stop_loop()
            raise

    def run(self, awaitable: Awaitable[R]) -> R:
        """Run `awaitable` on the loop thread and block until it is done."""
        if threading.get_ident() == self._thread.ident:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never awaited: close it quietly
            raise WrongThread("a blocking actor call from the actor system's own loop thread")

        async def main() -> R:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(main(), self.loop).result()

    def call(self, fn: Callable[[ActorSystem], R]) -> R:
        """Run ``fn(system)`` on the loop thread (for anything not wrapped here)."""

        async def main() -> R:
            return fn(self.system)

        return self.run(main())

    def spawn(
        self,
        actor_class: type[Actor[M]],
        *args: Any,
        name: str | None = None,
        mailbox: MailboxConfig | None = None,
        **kwargs: Any,
    ) -> BlockingRef[M]:
        ref = self.call(
            lambda system: system.spawn(actor_class, *args, name=name, mailbox=mailbox, **kwargs)
        )
        return BlockingRef(self, ref)

    def spawn_pool(
        self,
        routing: Routing[M],
        size: int,
        actor_class: type[Actor[M]],
        *args: Any,
        name: str | None = None,
        strategy: SupervisorStrategy | None = None,
        **kwargs: Any,
    ) -> BlockingRef[M]:
        ref = self.call(
            lambda system: system.spawn_pool(
                routing, size, actor_class, *args, name=name, strategy=strategy, **kwargs
            )
        )
        return BlockingRef(self, ref)

    def shutdown(self, *, drain: bool = True) -> None:
        """Stop every actor, then the loop thread (idempotent)."""
        if self.loop.is_closed():
            return
        try:
            self.run(self.system.shutdown(drain=drain))
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

    def __enter__(self) -> BlockingActorSystem:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.shutdown(drain=exc_type is None)

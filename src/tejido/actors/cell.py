"""The runtime of one local actor: its mailbox, its processing task, its lifecycle.

An `ActorCell` owns one actor *incarnation chain*: the reference, the mailbox, the children,
the watchers and the current instance (replaced on restart). Rules:

1. **One message at a time.** A cell runs at most one processing task. The task exists
   only while there is work: the first message into an idle mailbox starts it, and it ends
   when the mailbox is empty, so an idle actor costs no task (this is what makes 100,000
   idle actors cheap).
2. **FIFO per mailbox**, hence ordering per sender-receiver pair: two messages one sender
   tells one actor are processed in the order they were told. Stash and unstash reorder
   on purpose (unstashed messages go to the front, in their original order); control
   items (escalations) jump the queue.
3. **Lifecycle** (states NEW -> RUNNING <-> SUSPENDED/RESTARTING -> STOPPING -> STOPPED):
   ``started`` runs before the first message; a failure suspends the cell and asks the
   parent (`tejido.actors.supervision`); stopping runs ``stopping``, stops the children,
   runs ``stopped``, turns what is left into dead letters, then sends `Terminated` to each
   watcher and tells the parent. Hook errors in ``stopping``/``stopped`` are logged and do
   not stop the shutdown.
4. **Asks**: the reply is the return value of ``receive`` for the asked message. An ask
   whose message is stashed is answered when the message is processed again after
   ``unstash_all``; an ask whose message becomes a dead letter fails at once with
   `ActorStopped` or `MailboxFull` instead of waiting for its timeout.
5. **Threads**: everything here runs on the system's event loop; `LocalActorRef.tell`
   from another thread is handed over with ``call_soon_threadsafe``.
6. **Eager start** (`deliver`, used for messages that arrive from other nodes): when the
   actor is idle (running, no task, empty mailbox, not stopping), its class allows it
   (``Actor.eager``, default True) and no other actor is being run eagerly, ``receive``
   is started at once on the caller's stack instead of in a new task: the coroutine is
   driven with ``send(None)``. If it finishes without suspending (the common case: a
   reply computed from the actor's state), the message was handled with no task and no
   loop turn, and a remote ask's reply leaves with the read that brought the ask. If it
   suspends, a processing task takes the half-run coroutine over (`_resume`) and then
   drains the mailbox as usual. Rules 1-4 hold unchanged: nothing was queued ahead of
   the message, messages arriving meanwhile are queued behind it, and failures, stash,
   stop and asks are handled exactly as in the task. What differs is only *where* the
   first part of ``receive`` runs: outside any task (``asyncio.current_task()`` is None
   there), so an actor whose ``receive`` needs its own task before its first ``await``
   (``asyncio.timeout``, ``asyncio.TaskGroup``) sets ``eager = False``. This is the
   eager task start Python 3.12 offers as ``asyncio.eager_task_factory``, minus the task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import types
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from tejido.actors.errors import (
    ActorFailed,
    ActorNameTaken,
    ActorStopped,
    InvalidActorName,
    MailboxFull,
    SpawnFailed,
    UnhandledMessage,
)
from tejido.actors.local import (
    _NEW,
    _RESTARTING,
    _RUNNING,
    _STOP,
    _STOPPED,
    _STOPPING,
    _SUSPENDED,
    LocalActorRef,
    _Ask,
    _Control,
    _Escalate,
    _yield,
    fail_ask,
    message_of,
)
from tejido.actors.mailbox import MailboxConfig, Overflow
from tejido.actors.messages import DeadLetterReason, Terminated, TerminationCause
from tejido.actors.ref import ActorPath, ActorRef
from tejido.actors.supervision import Directive, RestartTracker, Scope, SupervisorStrategy
from tejido.actors.timers import TimerMessage, Timers
from tejido.core.errors import LocalProtocolError

if TYPE_CHECKING:
    from tejido.actors.actor import Actor
    from tejido.actors.system import ActorSystem

__all__ = ["ActorCell"]

log = logging.getLogger("tejido.actors")


class ActorCell:
    """One local actor's runtime (see the module docstring)."""

    __slots__ = (
        "actor",
        "capacity",
        "children",
        "current",
        "eager",
        "escalated",
        "factory",
        "handed_off",
        "loop",
        "mailbox",
        "overflow",
        "parent",
        "path",
        "ref",
        "restart_handle",
        "stash",
        "state",
        "stop_cause",
        "stop_drain",
        "system",
        "task",
        "terminated_",
        "timers_",
        "tracker",
        "watchers",
        "watching",
    )

    def __init__(
        self,
        system: ActorSystem,
        parent: ActorCell | None,
        path: ActorPath,
        factory: Callable[[], Actor[Any]],
        actor: Actor[Any],
        mailbox: MailboxConfig,
    ) -> None:
        self.system = system
        self.loop = system.loop
        self.parent = parent
        self.path = path
        self.factory = factory
        self.actor: Actor[Any] | None = actor
        self.mailbox: deque[object] | None = None  # made on first use: idle actors are small
        self.capacity = mailbox.capacity
        self.overflow = mailbox.overflow
        self.state = _NEW
        self.task: asyncio.Task[None] | None = None
        # made on first use (most actors never have children, watchers or a stash)
        self.children: dict[str, ActorCell] | None = None
        self.watchers: dict[ActorRef[Terminated], None] | None = None
        self.watching: dict[ActorRef[Any], None] | None = None
        self.stash: list[object] | None = None
        self.current: object = None
        self.handed_off = False
        self.escalated = False
        self.timers_: Timers | None = None
        self.tracker: RestartTracker | None = None
        self.terminated_: asyncio.Future[None] | None = None
        self.restart_handle: asyncio.TimerHandle | None = None
        self.stop_cause: TerminationCause | None = None
        self.stop_drain = True
        self.ref: LocalActorRef[Any] = LocalActorRef(self)
        self.eager = False  # receive is running on a caller's stack (rule 6)

    # ------------------------------------------------------------------ delivery
    def enqueue(self, item: object) -> None:
        """Queue a told message or an ask (rule 2); refuse it when stopping or full."""
        if self.stop_cause is not None or self.state == _STOPPED:
            reason = (
                DeadLetterReason.STOPPED if self.state == _STOPPED else (DeadLetterReason.STOPPING)
            )
            self.system.dead_letter(item, self.path, reason)
            return
        mailbox = self.mailbox
        if mailbox is None:
            mailbox = self.mailbox = deque()
        if self.capacity is not None and len(mailbox) >= self.capacity:
            if self.overflow is Overflow.FAIL:
                raise MailboxFull(str(self.path), self.capacity, message_of(item))
            dropped = item if self.overflow is Overflow.DROP_NEW else mailbox.popleft()
            fail_ask(dropped, MailboxFull(str(self.path), self.capacity, message_of(dropped)))
            self.system.dead_letter(dropped, self.path, DeadLetterReason.MAILBOX_FULL)
            if dropped is item:
                return
        mailbox.append(item)
        if self.task is None and self.state == _RUNNING and not self.eager:
            self.task = self.loop.create_task(self._drain())

    def deliver(self, item: object) -> None:
        """`enqueue`, or handle `item` at once when the actor is idle (rule 6)."""
        if (
            self.task is None
            and not self.mailbox
            and self.state == _RUNNING
            and self.stop_cause is None
            and not self.system.eager_busy
            and self.actor is not None
            and self.actor.eager
        ):
            actor = self.actor
        else:
            self.enqueue(item)
            return
        ask = type(item) is _Ask
        self.current = item
        self.handed_off = False
        self.eager = True
        system = self.system
        system.eager_busy = True
        try:
            coro = actor.receive(item.message if ask else item)  # type: ignore[attr-defined]
            if type(coro) is types.CoroutineType:
                yielded = coro.send(None)
            else:  # an awaitable of another kind: the task awaits it as it stands
                yielded = _UNSTARTED
        except StopIteration as stop:
            if ask and not self.handed_off and not item.future.done():  # type: ignore[attr-defined]
                item.future.set_result(stop.value)  # type: ignore[attr-defined]
        except UnhandledMessage as exc:
            self._unhandled(item, exc)
        except Exception as exc:
            self.eager = system.eager_busy = False
            self._failed(exc, item)
            return
        else:  # it suspended: a task carries it on, then drains the mailbox
            self.eager = system.eager_busy = False
            self.task = self.loop.create_task(self._drain((item, coro, yielded)))
            return
        finally:
            self.eager = system.eager_busy = False
        self.current = None
        if self.mailbox:  # told to itself, or a stop request, while it ran
            self._ensure_task()

    def enqueue_system(self, item: object, *, front: bool = False) -> None:
        """Queue a control item (never refused while the cell lives)."""
        if self.state == _STOPPED:
            return
        if front:
            self.box().appendleft(item)
        else:
            self.box().append(item)
        self._ensure_task()

    def _ensure_task(self) -> None:
        if self.task is None and self.state == _RUNNING and self.mailbox and not self.eager:
            self.task = self.loop.create_task(self._drain())

    async def _drain(self, started: tuple[object, Any, Any] | None = None) -> None:
        mailbox = self.box()
        actor = self.actor
        if actor is None:  # cannot happen while RUNNING; keep mypy and readers sure
            self.task = None
            return
        receive = actor.receive
        try:
            if started is not None:  # a receive started eagerly that suspended (rule 6)
                item, coro, yielded = started
                try:
                    result = await (coro if yielded is _UNSTARTED else _resume(coro, yielded))
                except UnhandledMessage as exc:
                    self._unhandled(item, exc)
                except Exception as exc:
                    self.task = None
                    self._failed(exc, item)
                    return
                else:
                    if isinstance(item, _Ask) and not self.handed_off and not item.future.done():
                        item.future.set_result(result)
            while True:
                if not mailbox:
                    # Linger one loop turn: an asker whose reply was just set sends its
                    # next message before this resumes, and no new task is needed.
                    await _yield()
                    if not mailbox:
                        break
                if self.state != _RUNNING:
                    break
                item = mailbox.popleft()
                self.current = item
                if isinstance(item, _Control):
                    if isinstance(item, _Ask):
                        self.handed_off = False
                        try:
                            result = await receive(item.message)
                        except UnhandledMessage as exc:
                            self._unhandled(item, exc)
                            continue
                        except Exception as exc:
                            self.task = None
                            self._failed(exc, item)
                            return
                        if not self.handed_off and not item.future.done():
                            item.future.set_result(result)
                        continue
                    if item is _STOP:
                        await self._finish()
                        return
                    if isinstance(item, _Escalate):
                        self.task = None
                        self._failed(item.error, None)
                        return
                    continue
                if isinstance(item, TimerMessage):
                    wanted, message = self.timers.accept(item)
                    if not wanted:
                        continue
                    self.current = item = message
                try:
                    await receive(item)
                except UnhandledMessage as exc:
                    self._unhandled(item, exc)
                except Exception as exc:
                    self.task = None
                    self._failed(exc, item)
                    return
        except BaseException:
            self.task = None
            raise
        self.task = None
        self.current = None  # stash() outside receive must not find an old message

    def _unhandled(self, item: object, error: UnhandledMessage) -> None:
        fail_ask(item, error)
        self.system.dead_letter(message_of(item), self.path, DeadLetterReason.UNHANDLED)

    def box(self) -> deque[object]:
        """The mailbox, made on first use."""
        mailbox = self.mailbox
        if mailbox is None:
            mailbox = self.mailbox = deque()
        return mailbox

    @property
    def terminated(self) -> asyncio.Future[None]:
        """Resolves when the actor has stopped (made on first use)."""
        if self.terminated_ is None:
            self.terminated_ = self.system.loop.create_future()
            if self.state == _STOPPED:
                self.terminated_.set_result(None)
        return self.terminated_

    # ------------------------------------------------------------------ helpers for Actor
    @property
    def timers(self) -> Timers:
        if self.timers_ is None:
            self.timers_ = Timers(self)
        return self.timers_

    def stash_current(self) -> None:
        if self.current is None:
            raise LocalProtocolError(f"{self.path}: stash() is only allowed inside receive")
        if self.stash is None:
            self.stash = []
        self.stash.append(self.current)
        self.handed_off = True

    def unstash_all(self) -> None:
        if self.stash:
            self.box().extendleft(reversed(self.stash))
            self.stash = None
            self._ensure_task()

    def spawn_child(
        self,
        actor_class: type[Actor[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        mailbox: MailboxConfig | None,
        uid: int | None = None,
    ) -> LocalActorRef[Any]:
        if self.stop_cause is not None or self.state == _STOPPED:
            raise ActorStopped(str(self.path), f"spawn {actor_class.__name__}")
        system = self.system
        if uid is None:  # a remote spawner chooses the uid (tejido.actors.remote, rule 4)
            uid = system.next_uid()
        if name is None:
            name = f"${uid}"
        else:
            _check_name(name)
            if self.children and name in self.children:
                raise ActorNameTaken(f"{self.path} already has a child named {name!r}")
        path = self.path.child(name, uid)

        def factory() -> Actor[Any]:
            return actor_class(*args, **kwargs)

        try:
            actor = factory()
        except Exception as exc:
            raise SpawnFailed(str(path), exc) from exc
        config = mailbox or actor_class.mailbox or system.default_mailbox
        cell = ActorCell(system, self, path, factory, actor, config)
        if self.children is None:
            self.children = {}
        self.children[name] = cell
        system.registry[path.elements] = cell
        cell.start()
        return cell.ref

    def start(self) -> None:
        actor = self.actor
        if actor is None:
            return
        actor._cell = self
        if type(actor).started is _base_started():
            self.state = _RUNNING
            self._ensure_task()
        else:
            self.task = self.system.loop.create_task(self._begin())

    async def _begin(self) -> None:
        actor = self.actor
        if actor is not None:
            try:
                await actor.started()
            except Exception as exc:
                self.task = None
                self._failed(exc, None)
                return
        self.state = _RUNNING
        await self._drain()

    # ------------------------------------------------------------------ failure
    def _failed(self, error: Exception, item: object) -> None:
        """This actor raised (rule 3): suspend and let the parent decide."""
        fail_ask(item, ActorFailed(str(self.path), message_of(item), error))
        self.current = None
        if self.state in (_SUSPENDED, _RESTARTING, _STOPPING, _STOPPED):
            return  # a restart or stop of this cell is already under way
        self.state = _SUSPENDED
        if self.stop_cause is not None:  # asked to stop meanwhile: no one to decide
            self.system.loop.create_task(self._finish())
            return
        log.warning("%s failed: %s: %s", self.path, type(error).__name__, error)
        parent = self.parent
        if parent is None:  # the guardian itself: nothing above it
            self.system.loop.create_task(self._finish())
            return
        parent.supervise(self, error)

    def supervise(self, child: ActorCell, error: Exception) -> None:
        """Decide on `child`'s failure with this actor's strategy."""
        strategy: SupervisorStrategy = (
            self.actor.supervisor_strategy if self.actor is not None else self.system.strategy
        )
        try:
            directive = strategy.decider(error)
        except Exception as exc:
            log.error("%s: supervisor decider raised %r; stopping %s", self.path, exc, child.path)
            directive = Directive.STOP
        delay_s = 0.0
        if directive is Directive.RESTART:
            if child.tracker is None:
                child.tracker = RestartTracker()
            attempt = child.tracker.attempt(strategy, self.system.loop.time())
            if attempt is None:
                log.warning(
                    "%s: restart limit (%s in %g s) reached; %s",
                    child.path, strategy.max_restarts, strategy.within_s, strategy.on_limit.value,
                )  # fmt: skip
                directive = strategy.on_limit
            elif strategy.backoff is not None:
                delay_s = strategy.backoff.delay_s(attempt, self.system.rng)
        self.system.record_decision(child.path, error, directive, delay_s)
        if strategy.scope is Scope.ALL_FOR_ONE and directive in (Directive.RESTART, Directive.STOP):
            siblings = self.children or {}
            targets = [child, *(c for c in siblings.values() if c is not child)]
        else:
            targets = [child]
        if directive is Directive.RESUME:
            child.resume()
        elif directive is Directive.RESTART:
            for target in targets:
                target.schedule_restart(error, delay_s)
        elif directive is Directive.STOP:
            for target in targets:
                target.request_stop(False, TerminationCause.FAILED)
        elif self.parent is None:  # ESCALATE from a top-level actor
            log.error("%s escalated %r to the guardian; stopping it", child.path, error)
            child.request_stop(False, TerminationCause.FAILED)
        else:
            child.escalated = True
            if self.state in (_RUNNING, _NEW) and self.stop_cause is None:
                self.enqueue_system(_Escalate(error), front=True)

    def resume(self) -> None:
        if self.state != _SUSPENDED:
            return
        self.state = _RUNNING
        for child in (self.children or {}).values():
            if child.escalated:
                child.escalated = False
                child.resume()
        self._ensure_task()

    def schedule_restart(self, reason: Exception, delay_s: float) -> None:
        if self.stop_cause is not None or self.state in (_RESTARTING, _STOPPING, _STOPPED):
            return
        if self.restart_handle is not None:
            return
        self.state = _SUSPENDED
        loop = self.system.loop
        if delay_s > 0:
            self.restart_handle = loop.call_later(delay_s, self._begin_restart, reason)
        else:
            self._begin_restart(reason)

    def _begin_restart(self, reason: Exception) -> None:
        self.restart_handle = None
        if self.state != _SUSPENDED or self.stop_cause is not None:
            return
        self.state = _RESTARTING
        self.system.loop.create_task(self._restart(reason))

    async def _wait_idle(self) -> None:
        task = self.task
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait([task])

    async def _retire_instance(self, drain_children: bool) -> None:
        """Old instance: hooks, timers and children (shared by restart and stop)."""
        if self.timers_ is not None:
            self.timers_.cancel_all()
        actor = self.actor
        if actor is not None:
            await self._hook(actor.stopping)
        children = list((self.children or {}).values())
        if children:
            await asyncio.gather(
                *(c.request_stop(drain_children, TerminationCause.STOPPED) for c in children)
            )
        if actor is not None:
            await self._hook(actor.stopped)

    async def _hook(self, hook: Callable[[], Any]) -> None:
        try:
            await hook()
        except Exception:
            log.exception("%s: %s hook raised", self.path, getattr(hook, "__name__", "hook"))

    async def _restart(self, reason: Exception) -> None:
        await self._wait_idle()
        await self._retire_instance(drain_children=False)
        self.current = None
        if self.stash:
            self.box().extendleft(reversed(self.stash))
            self.stash = None
        try:
            actor = self.factory()
        except Exception as exc:
            self.actor = None
            self.state = _RUNNING  # so that _failed may suspend it again
            self._failed(exc, None)
            return
        self.actor = actor
        actor._cell = self
        self.state = _RUNNING
        try:
            await actor.restarted(reason)
        except Exception as exc:
            self._failed(exc, None)
            return
        if self.stop_cause is not None and _STOP not in self.box():
            self.box().append(_STOP)
        self._ensure_task()

    # ------------------------------------------------------------------ stopping
    def request_stop(self, drain: bool, cause: TerminationCause) -> asyncio.Future[None]:
        """Begin stopping (once); the future resolves when the actor has stopped."""
        if self.state == _STOPPED:
            return self.terminated
        first = self.stop_cause is None
        if first:
            self.stop_cause = cause
            self.stop_drain = drain
        if not drain:
            self.stop_drain = False
            self._flush(DeadLetterReason.STOPPING, keep_stop=True)
        if not first:
            return self.terminated
        if self.state == _SUSPENDED or (self.state == _NEW and self.task is None):
            if self.restart_handle is not None:
                self.restart_handle.cancel()
                self.restart_handle = None
            self.state = _SUSPENDED
            self.system.loop.create_task(self._finish())
        else:
            self.box().append(_STOP)
            self._ensure_task()
        return self.terminated

    def _flush(self, reason: DeadLetterReason, *, keep_stop: bool) -> None:
        if not self.mailbox:
            return
        items = list(self.mailbox)
        self.mailbox.clear()  # in place: a running drain loop holds this deque
        for item in items:
            if item is _STOP or isinstance(item, _Escalate):
                if keep_stop and item is _STOP:
                    self.mailbox.append(item)
                continue
            if isinstance(item, TimerMessage):
                continue
            self.system.dead_letter(item, self.path, reason)

    async def _finish(self) -> None:
        if self.state in (_STOPPING, _STOPPED):
            return
        await self._wait_idle()
        self.state = _STOPPING
        await self._retire_instance(drain_children=self.stop_drain)
        self.state = _STOPPED
        self.task = None
        self._flush(DeadLetterReason.STOPPED, keep_stop=False)
        for item in self.stash or ():
            self.system.dead_letter(item, self.path, DeadLetterReason.STOPPED)
        self.stash = None
        for watched in self.watching or ():
            watched._unwatch(self.ref)
        self.watching = None
        parent = self.parent
        if parent is not None and parent.children and parent.children.get(self.path.name) is self:
            del parent.children[self.path.name]
            if parent.actor is not None:
                parent.actor._child_terminated(self.ref)
        self.system.registry.pop(self.path.elements, None)
        cause = self.stop_cause or TerminationCause.STOPPED
        for watcher in self.watchers or ():
            if isinstance(watcher, LocalActorRef) and watcher._cell.watching:
                watcher._cell.watching.pop(self.ref, None)
            watcher.tell(Terminated(self.ref, cause))
        self.watchers = None
        self.actor = None
        if self.terminated_ is not None and not self.terminated_.done():
            self.terminated_.set_result(None)


#: `_drain`'s marker for an awaitable `receive` returned that was not started eagerly
_UNSTARTED = object()


@types.coroutine
def _resume(coro: Any, yielded: Any) -> Generator[Any, Any, Any]:
    """Carry on a coroutine that already ran up to its first suspension (it yielded
    `yielded`, a future or None, to whoever drove it): hand that to the task running
    us, then pass every value or exception the task sends on to the coroutine, as
    ``await`` would have. Returns the coroutine's result."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # the task's cancellation, passed on to the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidActorName(f"an actor name must be a non-empty string, got {name!r}")
    if name.startswith("$") or "/" in name or "#" in name or not name.isprintable():
        raise InvalidActorName(
            f"invalid actor name {name!r}: no '/', '#', unprintable characters or leading '$'"
        )


@functools.cache
def _base_started() -> Any:
    from tejido.actors.actor import Actor

    return Actor.started

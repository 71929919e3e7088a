"""The node host: one pure `Process` driven by real sockets, a real clock and a real disk.

The same objects the simulator runs (`tejido.protocols.register`, Raft, ...) run here
unchanged. The host is the runtime half of the contract in `tejido.core.protocol`:

- **Start**: the data directory is opened (`DiskStorage`), and the process starts with the
  `Recovered` state it holds.
- **Messages** go through the `Mesh` (best effort, bounded queues), and arrive from it.
- **Timers** are `loop.call_later` handles on the event loop's monotonic clock (`Env.clock`
  reads ``time.monotonic``); setting a name again replaces its timer, cancelling drops it.
- **Storage** operations are applied in order as the process emits them; each sync token is
  answered with `Durable(token)` once an fsync covering it completes (group commit).
- **Commands** come from clients on purpose ``client`` (`tejido.net.client`); each gets a
  fresh `RequestId`, and the process's `reply` goes back to the connection that asked (if
  it is still there).
- **Randomness**: `Env.rng` is a `random.Random` seeded from the OS, or from ``seed``.
- **Python callers** (an application embedding the host, e.g. `tejido.store`): `submit`
  runs a command and returns a future of its `Outcome`; `call` runs any method of the
  process as one input and carries out its outputs, letting the method's exception (e.g.
  `NotLeader`) reach the caller; ``storage=`` picks another storage class with
  `DiskStorage`'s constructor (e.g. a write-ahead log).
- **Tracing** (optional): with a `TraceRecorder` (`tejido.net.trace`) the mesh stamps
  messages with the node's Lamport and vector clocks, and the host records every command,
  reported event and fired timer in the node's trace file.

Rules:

1. Every input runs to completion. The outbox is carried out once per event-loop
   iteration, after every input of that iteration (a burst of client commands, the
   messages that arrived together, the sync tokens one fsync covered): storage first, then
   events, messages, syncs, timers, replies. Events are recorded (traced) before the
   messages leave, so a peer acting on a message never records an event earlier than
   the event that preceded the message here. Messages are written to the sockets at once
   (`Mesh.send_now`), before the sync round is handed to the fsync thread: a leader's
   AppendEntries leaves without waiting for that hand-off (thesis §10.2.1: the leader
   writes its log in parallel with replicating it), and a sync still covers every storage
   operation applied before it. The contract allows several inputs before the
   runtime takes the batch (`Process.ready`); Raft then merges a burst of proposals into
   one AppendEntries per follower (tejido.raft.replication rule 2b), and the host joins
   consecutive log appends into one storage write.
   Messages leave whatever syncs are pending, as the contract says; protocols send
   durability-dependent messages from `on_durable`. Outputs still waiting are carried out
   before a timer fires, before `call` returns and before the host stops, so they are
   never reordered with later inputs.
2. Fail-stop: if the process raises, or an fsync fails, the host stops and `failed` holds
   the reason. A node that is wrong about its own state must not keep talking.
3. Message kinds are the `Message` subclasses the process declares in a ``MESSAGES``
   attribute (``()``: none), or else the ones defined in its class's module, or else in
   that module's package (``tejido.raft.node`` -> ``tejido.raft.*``; a top-level module has
   none). Tags are class names: when two modules of the package define the same class
   name, the one the process's module imports wins (``tejido.paxos.multi`` imports
   ``tejido.paxos.messages.Accept``, not ``tejido.paxos.synod.Accept``); a name neither
   imported nor unique is an error naming both classes.
4. Timers are lazy: a timer set again for later keeps its loop handle and only moves its
   deadline (a follower resets its election timer on every message); when the handle
   fires before the deadline it is armed again for the rest. A timer set for earlier gets
   a new handle.
5. Commands from `submit` wait for the end of the loop iteration and reach the process
   together, as one input: ``on_commands([(request, operation), ...])`` when the process
   has it (Raft appends a burst of writes as one batch of entries), else one
   ``on_command`` each. Delaying a command to the end of the iteration reorders it only
   with inputs that were concurrent with it.
6. A batch that asks for `on_idle` (`Process.request_idle`) gets it in a later loop
   callback, which first carries out the outputs of any input handled in between: a
   follower's acknowledgement released by an fsync done on the loop (`tejido.net.wal`
   rule 2b) leaves before the work the process put off (Raft's deferred apply,
   `tejido.raft.replication` rule 5c); with the fsync on the worker, that work runs
   while the disk does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import LogAppend, StorageOp
from tejido.net.client import (
    CLIENT,
    ClientError,
    ClientReply,
    decode_request,
    encode_client_message,
)
from tejido.net.connection import ConnectionClosed, FramedConnection
from tejido.net.handshake import Hello
from tejido.net.mesh import Mesh, MessageCodec
from tejido.net.storage import DiskStorage
from tejido.net.tls import TLSConfig
from tejido.net.trace import TraceRecorder

__all__ = ["NodeHost", "message_types", "use_uvloop"]

log = logging.getLogger("tejido.net.host")

_T = TypeVar("_T")


def use_uvloop() -> bool:
    """Make new event loops uvloop loops when uvloop is installed; True if it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _all_subclasses(base: type[Message]) -> list[type[Message]]:
    found: list[type[Message]] = []
    stack = [base]
    while stack:
        for sub in stack.pop().__subclasses__():
            found.append(sub)
            stack.append(sub)
    return found


def message_types(process_type: type[Process]) -> tuple[type[Message], ...]:
    """The wire message kinds of a protocol (rule 3), in a stable order."""
    declared = getattr(process_type, "MESSAGES", None)
    if declared is not None:
        return tuple(declared)
    module = process_type.__module__
    package = module.rpartition(".")[0]
    every = _all_subclasses(Message)
    own = [t for t in every if t.__module__ == module]
    if not own and package:  # a top-level module has no package to fall back on
        own = _unique_tags(
            [t for t in every if t.__module__.rpartition(".")[0] == package],
            {id(v) for v in vars(sys.modules[module]).values()} if module in sys.modules else set(),
        )
    return tuple(sorted(own, key=lambda t: (t.__module__, t.__qualname__)))


def _unique_tags(kinds: list[type[Message]], imported: set[int]) -> list[type[Message]]:
    """One class per tag (class name): on a clash, the one the process module imports."""
    by_name: dict[str, list[type[Message]]] = {}
    for kind in kinds:
        by_name.setdefault(kind.__name__, []).append(kind)
    chosen: list[type[Message]] = []
    for name, clash in by_name.items():
        if len(clash) > 1:
            clash = [k for k in clash if id(k) in imported]
            if len(clash) != 1:
                shown = ", ".join(f"{k.__module__}.{k.__qualname__}" for k in by_name[name])
                raise LocalProtocolError(f"message tag {name!r} names several classes: {shown}")
        chosen.append(clash[0])
    return chosen


class _ClientSession:
    """One client connection: decodes requests, hands them to the host, sends replies."""

    __slots__ = ("conn", "host", "open")

    def __init__(self, host: NodeHost, conn: FramedConnection) -> None:
        self.host = host
        self.conn = conn
        self.open = True

    def frame_received(self, payload: bytes) -> None:
        try:
            request = decode_request(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.answer(ClientError(f"not a ClientRequest: {exc}"))
            return
        self.host._command(self, request.id, request.operation)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.open = False

    def answer(self, message: ClientReply | ClientError) -> None:
        if self.open:
            with contextlib.suppress(ConnectionClosed):
                self.conn.send(encode_client_message(message))


class _LocalRequest:
    """A command submitted from Python (`NodeHost.submit`): its reply resolves a future."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Outcome]) -> None:
        self.future = future

    def answer(self, message: ClientReply | ClientError) -> None:
        if not self.future.done() and isinstance(message, ClientReply):
            self.future.set_result(message.outcome)


class _Timer:
    """One armed timer (rule 4): its loop handle and the deadline it stands for."""

    __slots__ = ("deadline", "handle")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.handle: asyncio.TimerHandle | None = None


#: A timer handle firing this close before its deadline counts as on time (the loop's
#: clock resolution; rearming for less would only spin).
_TIMER_SLACK_S = 0.001


class NodeHost:
    """Runs one node: see the module docstring."""

    def __init__(
        self,
        *,
        node_id: NodeId,
        peers: Mapping[NodeId, str],
        factory: Callable[[Env], Process],
        data_dir: str | Path,
        cluster: str = "tejido",
        tls: TLSConfig | None = None,
        seed: int | None = None,
        messages: tuple[type[Message], ...] | None = None,
        mesh_options: Mapping[str, object] | None = None,
        tracer: TraceRecorder | None = None,
        storage: Callable[..., Any] | None = None,
    ) -> None:
        self.node_id = node_id
        self.peers = dict(peers)
        self.factory = factory
        self.cluster = cluster
        self.tls = tls
        self.rng = random.Random(seed)
        self.messages = messages
        self.mesh_options = dict(mesh_options or {})
        self.tracer = tracer
        storage_class = storage or DiskStorage
        self.storage: DiskStorage = storage_class(
            data_dir, on_durable=self._on_durable, on_error=self._fail
        )
        self.process: Process | None = None
        self.mesh: Mesh | None = None
        self.address: str | None = None
        self.failed: asyncio.Future[str] | None = None
        self._timers: dict[TimerName, _Timer] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        #: A carry-out is scheduled for the end of this loop iteration (rule 1).
        self._outputs_pending = False
        #: Commands from `submit` this loop iteration, given to the process together (rule 5).
        self._submitted: list[tuple[RequestId, Operation]] = []
        self._requests: dict[RequestId, tuple[_ClientSession | _LocalRequest, int]] = {}
        self._next_request = 0
        self._stopped = False
        #: Counters for `stats()`.
        self.commands = 0
        self.replies = 0
        self.events = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(
        self, listen: str | None = "127.0.0.1:0", *, sock: socket.socket | None = None
    ) -> str:
        """Recover, build the process, listen, dial peers, start the process; returns HOST:PORT."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.failed = loop.create_future()
        recovered = self.storage.open()
        nodes = tuple(sorted([self.node_id, *self.peers]))
        env = Env(node_id=self.node_id, nodes=nodes, rng=self.rng, clock=time.monotonic)
        process = self.factory(env)
        self.process = process
        kinds = self.messages or message_types(type(process))
        mesh = Mesh(
            self.node_id,
            self.peers,
            cluster=self.cluster,
            codec=MessageCodec(kinds),
            on_message=self._on_message,
            server_ssl=self.tls.server_context() if self.tls else None,
            client_ssl=self.tls.client_context() if self.tls else None,
            tracer=self.tracer,
            **self.mesh_options,  # type: ignore[arg-type]
        )
        self.mesh = mesh
        self.address = await mesh.listen(listen, sock=sock, others={CLIENT: self._accept_client})
        mesh.start()
        self._step(process.on_start, recovered)
        log.info(
            "node %s listening on %s (recovered %d log records, %d keys)",
            self.node_id,
            self.address,
            len(recovered.records),
            len(recovered.state),
        )
        return self.address

    async def stop(self) -> None:
        """Stop taking inputs, close connections, make applied storage durable, release it."""
        if self._stopped:
            return
        self._flush_outputs()  # rule 1: what was emitted is carried out (storage above all)
        self._stopped = True
        self._cancel_timers()
        if self.mesh is not None:
            await self.mesh.close()
        try:
            await self.storage.close()
        except OSError as exc:
            log.error("node %s: final sync failed: %s", self.node_id, exc)
            self.storage.abandon()
        if self.tracer is not None:
            self.tracer.close()

    def _fail(self, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        log.critical("node %s stops (fail-stop): %s", self.node_id, reason, exc_info=exc)
        self._stopped = True
        self._cancel_timers()
        if self.failed is not None and not self.failed.done():
            self.failed.set_result(reason)

    def _cancel_timers(self) -> None:
        for timer in self._timers.values():
            if timer.handle is not None:
                timer.handle.cancel()
        self._timers.clear()

    @property
    def outstanding(self) -> int:
        """Client commands submitted here and not answered yet."""
        return len(self._requests)

    def stats(self) -> dict[str, object]:
        return {
            "node": self.node_id,
            "commands": self.commands,
            "replies": self.replies,
            "events": self.events,
            "fsyncs": self.storage.fsyncs,
            "peers": self.mesh.stats() if self.mesh else [],
        }

    # ------------------------------------------------------------------ inputs
    def _step(self, hook: Callable[..., None], *args: object) -> None:
        if self._stopped:
            return
        try:
            hook(*args)
        except Exception as exc:  # rule 2: any failure stops the node
            self._fail(exc)
            return
        self._schedule_outputs()

    def _schedule_outputs(self) -> None:
        if not self._outputs_pending:  # rule 1: once per loop iteration
            self._outputs_pending = True
            loop = self._loop
            assert loop is not None
            loop.call_soon(self._flush_outputs)

    def _flush_outputs(self) -> None:
        """Give the process this iteration's submitted commands (rule 5), then carry out
        what the inputs so far emitted (rule 1), unless already done."""
        if not self._outputs_pending:
            return
        self._outputs_pending = False
        process = self.process
        if self._stopped or process is None:
            return
        submitted = self._submitted
        try:
            if submitted:
                self._submitted = []
                many = getattr(process, "on_commands", None)
                if many is not None and len(submitted) > 1:
                    many(submitted)
                else:
                    for request, operation in submitted:
                        process.on_command(request, operation)
            self._carry_out()
        except Exception as exc:  # rule 2
            self._fail(exc)

    def _on_message(self, src: NodeId, message: Message) -> None:
        if self.process is not None:
            self._step(self.process.on_message, src, message)

    def _on_durable(self, token: int) -> None:
        if self.process is not None:
            self._step(self.process.on_durable, token)

    def submit(self, operation: Operation) -> asyncio.Future[Outcome]:
        """Run `operation` as a client command; the future gets its `Outcome` (a stopped
        node answers ``fail``). A command the protocol never answers leaves the future
        pending: wait on it with a timeout."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if self._stopped or self.process is None:
            future.set_result(Outcome("fail", error="the node is stopping"))
            return future
        self._next_request += 1
        request = RequestId(self._next_request)
        self._requests[request] = (_LocalRequest(future), 0)
        # A caller that stops waiting (cancels, or resolves the future itself, e.g. with a
        # timeout outcome) must not leave its entry behind for ever.
        future.add_done_callback(lambda _: self._requests.pop(request, None))
        self.commands += 1
        self._submitted.append((request, operation))
        self._schedule_outputs()
        return future

    def call(self, method: Callable[[], _T]) -> _T:
        """Run `method` (e.g. ``lambda: raft.transfer_leadership(2)``) as one input of the
        process, then carry out its outputs. An exception from `method` reaches the caller
        (the outputs emitted before it are still carried out); a stopped node raises
        `LocalProtocolError`."""
        if self._stopped or self.process is None:
            raise LocalProtocolError("the node is stopped")
        self._flush_outputs()  # earlier inputs' outputs go first (rule 1)
        try:
            return method()
        finally:
            try:
                self._carry_out()
            except Exception as exc:  # rule 2
                self._fail(exc)

    def _accept_client(self, conn: FramedConnection, hello: Hello) -> _ClientSession:
        return _ClientSession(self, conn)

    def _command(self, session: _ClientSession, ident: int, operation: object) -> None:
        if self._stopped or self.process is None:
            session.answer(ClientReply(ident, Outcome("fail", error="the node is stopping")))
            return
        self._next_request += 1
        request = RequestId(self._next_request)
        self._requests[request] = (session, ident)
        self.commands += 1
        if self.tracer is not None and isinstance(operation, Operation):
            self.tracer.command(operation)
        self._step(self.process.on_command, request, operation)

    # ------------------------------------------------------------------ outputs
    def _carry_out(self) -> None:
        process = self.process
        assert process is not None
        out = process.out
        if out.storage:
            apply = self.storage.apply
            for op in _join_appends(out.storage) if len(out.storage) > 1 else out.storage:
                apply(op)
            out.storage.clear()
        if out.events:  # recorded before the messages leave (rule 1)
            self.events += len(out.events)
            if self.tracer is not None:
                for event in out.events:
                    self.tracer.event(event)
            if log.isEnabledFor(logging.DEBUG):
                for event in out.events:
                    log.debug("node %s: %s", self.node_id, event.describe())
            out.events.clear()
        if out.messages:  # before the syncs, written at once (rule 1)
            mesh = self.mesh
            assert mesh is not None
            mesh.send_now(out.messages)
            out.messages.clear()
        if out.syncs:
            many = getattr(self.storage, "request_syncs", None)
            if many is not None:  # one fsync round for every token of the batch (rule 1)
                many(out.syncs)
            else:
                for token in out.syncs:
                    self.storage.request_sync(token)
            out.syncs.clear()
        if out.timers:
            self._set_timers(out.timers)
            out.timers.clear()
        if out.replies:
            for request, outcome in out.replies:
                asked = self._requests.pop(request, None)
                if asked is not None:
                    self.replies += 1
                    asked[0].answer(ClientReply(asked[1], outcome))
            out.replies.clear()
        if out.idle:  # rule 6
            out.idle = False
            loop = self._loop
            assert loop is not None
            loop.call_soon(self._idle)

    def _idle(self) -> None:
        """Rule 6: outputs of inputs since the batch that asked go first, then `on_idle`."""
        self._flush_outputs()
        if self.process is not None:
            self._step(self.process.on_idle)

    def _set_timers(self, timers: list[tuple[TimerName, float | None]]) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        armed = self._timers
        for name, delay in timers:
            timer = armed.get(name)
            if delay is None:
                if timer is not None:
                    del armed[name]
                    if timer.handle is not None:
                        timer.handle.cancel()
                continue
            deadline = now + delay
            if timer is not None and timer.handle is not None:
                if timer.handle.when() <= deadline:  # rule 4: it rearms itself when it fires
                    timer.deadline = deadline
                    continue
                timer.handle.cancel()
            timer = _Timer(deadline)
            timer.handle = loop.call_at(deadline, self._fire, name, timer)
            armed[name] = timer

    def _fire(self, name: TimerName, timer: _Timer) -> None:
        self._flush_outputs()  # rule 1: outputs emitted before this instant go first
        if self._timers.get(name) is not timer or self.process is None:
            return  # replaced or cancelled since this handle was armed
        loop = self._loop
        assert loop is not None
        now = loop.time()
        if timer.deadline - now > _TIMER_SLACK_S:  # moved later (rule 4)
            timer.handle = loop.call_at(timer.deadline, self._fire, name, timer)
            return
        del self._timers[name]
        if self.tracer is not None and not self._stopped:
            self.tracer.timer(name)
        self._step(self.process.on_timer, name)


def _join_appends(ops: list[StorageOp]) -> list[StorageOp]:
    """`ops` with every run of consecutive log appends joined into one (rule 1): the same
    records in the same order, one write instead of several."""
    joined: list[StorageOp] = []
    run: list[bytes] = []
    for op in ops:
        if isinstance(op, LogAppend):
            run.extend(op.records)
            continue
        if run:
            joined.append(LogAppend(tuple(run)))
            run = []
        joined.append(op)
    if run:
        joined.append(LogAppend(tuple(run)))
    return joined

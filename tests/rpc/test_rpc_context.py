"""Each server call runs in a context of its own (`tejido.rpc.server`, rule 2): context
variables an implementation sets (its own, `call_options`, the call context) never reach
the next call on the connection, whether calls finish inline or suspend; `call_options`
around a suspending await works inside an implementation; and a cancel that arrives
before a suspended call's task first runs still cancels the implementation."""

from __future__ import annotations

import asyncio
import contextvars

import msgspec
import pytest
from rpc_fixtures import LOOPS, CalcImpl, Calculator, Recorder, run

import tejido.rpc as rpc
from tejido.net.connection import FramedConnection
from tejido.net.handshake import Hello
from tejido.rpc import wire

#: An application's own context variable, set (and never reset) by `Probe.remember`.
remembered: contextvars.ContextVar[str | None] = contextvars.ContextVar("remembered", default=None)


@rpc.service
class Probe:
    async def remember(self, value: str, suspend: bool) -> None: ...

    async def recall(self) -> str | None: ...

    async def nested_with_options(self, timeout: float) -> int: ...

    async def nested_remaining(self) -> float | None: ...

    async def wait(self) -> None: ...


class ProbeImpl(Probe):
    def __init__(self, downstream: Calculator | None = None) -> None:
        self.downstream = downstream
        self.waiting = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()

    async def remember(self, value: str, suspend: bool) -> None:
        remembered.set(value)
        if suspend:
            await asyncio.sleep(0)

    async def recall(self) -> str | None:
        return remembered.get()

    async def nested_with_options(self, timeout: float) -> int:
        assert self.downstream is not None
        with rpc.call_options(timeout=timeout):  # spans an await that suspends
            return await self.downstream.add(2, 3)

    async def nested_remaining(self) -> float | None:
        assert self.downstream is not None
        return await self.downstream.remaining()

    async def wait(self) -> None:
        self.waiting.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def probe_pair() -> tuple[rpc.Server, rpc.Server, Calculator, Probe]:
    """A Calculator server, a Probe server calling it, and a stub for the Probe."""
    downstream_server = await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()})
    downstream = await rpc.connect(Calculator, downstream_server.address, timeout=None)
    probe_server = await rpc.serve("127.0.0.1:0", {Probe: ProbeImpl(downstream)})
    probe = await rpc.connect(Probe, probe_server.address, timeout=None)
    return downstream_server, probe_server, downstream, probe


async def close_pair(parts: tuple[rpc.Server, rpc.Server, Calculator, Probe]) -> None:
    downstream_server, probe_server, downstream, probe = parts
    await rpc.close(probe)
    await rpc.close(downstream)
    await probe_server.close()
    await downstream_server.close()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("suspend", [False, True], ids=["inline", "suspended"])
def test_a_variable_one_call_sets_is_not_seen_by_the_next(loop: str, suspend: bool) -> None:
    async def main() -> None:
        async with (
            await rpc.serve("127.0.0.1:0", {Probe: ProbeImpl()}) as server,
            await rpc.connect(Probe, server.address) as probe,
        ):
            assert await probe.recall() is None
            await probe.remember("first", suspend)
            assert await probe.recall() is None
            # Several in one batch (one read at the server): still separate.
            results = await asyncio.gather(
                probe.remember("second", suspend), probe.recall(), probe.recall()
            )
            assert results == [None, None, None]

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("caller_deadline", [False, True], ids=["plain", "with-deadline"])
def test_call_options_around_a_suspending_await_and_no_leak_to_the_next_call(
    loop: str, caller_deadline: bool
) -> None:
    async def main() -> None:
        parts = await probe_pair()
        probe = parts[3]
        try:
            if caller_deadline:  # the call then takes the server's general path
                with rpc.call_options(timeout=30.0):
                    assert await probe.nested_with_options(5.0) == 5
            else:
                assert await probe.nested_with_options(5.0) == 5
            # The next call (inline) makes a nested call: no deadline may have leaked.
            assert await probe.nested_remaining() is None
            assert await probe.nested_remaining() is None
        finally:
            await close_pair(parts)

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_deadline_propagates_only_to_the_call_that_has_it(loop: str) -> None:
    async def main() -> None:
        parts = await probe_pair()
        probe = parts[3]
        try:
            with rpc.call_options(timeout=20.0):
                left = await probe.nested_remaining()
            assert left is not None
            assert 0 < left <= 20.0
            assert await probe.nested_remaining() is None  # inline, after the deadline one
            with rpc.call_options(timeout=20.0):
                first, second = await asyncio.gather(
                    probe.nested_remaining(), probe.nested_remaining()
                )
            assert first is not None
            assert second is not None
            assert await probe.nested_remaining() is None
        finally:
            await close_pair(parts)

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("caller_deadline", [False, True], ids=["inline", "with-deadline"])
def test_a_cancel_before_a_suspended_call_first_runs_cancels_it(
    loop: str, caller_deadline: bool
) -> None:
    async def main() -> None:
        impl = ProbeImpl()
        server = rpc.Server()
        server.add(Probe, impl)
        conn = FramedConnection()
        conn.connection_made(Recorder())  # type: ignore[arg-type]
        receiver = server._accept(conn, Hello(cluster="tejido", node="", purpose="rpc"))
        target = wire.Target(1, "Probe", "wait", "")
        timeout = 30.0 if caller_deadline else None
        call = wire.Call(1, target, timeout, None, 0, msgspec.Raw(wire.encoder.encode(())))
        # The call and its cancel in one read: the call suspends, its task has not run yet.
        receiver.frames_received([wire.encoder.encode(wire.ClientBatch([call, wire.Cancel(1)]))])
        assert impl.waiting.is_set()  # it was stepped (and suspended) right away
        async with asyncio.timeout(5.0):
            await impl.cancelled.wait()  # the implementation saw CancelledError
        assert not receiver.calls
        receiver.drop_calls()

    run(main(), loop)

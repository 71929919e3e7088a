"""Unary and oneway calls over real loopback connections: types, errors, services, objects.

Each test starts a server on port 0 and calls it through the typed stub, on both the stdlib
loop and uvloop where the loop matters.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from rpc_fixtures import (
    LOOPS,
    Box,
    CalcImpl,
    Calculator,
    Colour,
    NotFound,
    Overdrawn,
    Point,
    calculator,
    run,
)

import tejido.rpc as rpc
from tejido.core.errors import LocalProtocolError


@pytest.mark.parametrize("loop", LOOPS)
def test_unary_call_returns_the_result(loop: str) -> None:
    async def main() -> None:
        impl = CalcImpl()
        async with await rpc.serve("127.0.0.1:0", {Calculator: impl}) as server:
            calc = await rpc.connect(Calculator, f"127.0.0.1:{server.port}")
            assert await calc.add(1, 2) == 3
            assert await calc.add(a=40, b=2) == 42
            results = await asyncio.gather(*(calc.add(i, i) for i in range(200)))
            assert results == [2 * i for i in range(200)]
            assert impl.calls == 202
            await rpc.close(calc)

    run(main(), loop)


def test_every_annotated_type_crosses_the_wire() -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            box = await calc.describe(
                b"\x00\xff",
                ["a", "b"],
                {"w": 1.5, "v": 2.0},
                Box("in", [Point(1, 2)], Colour.GREEN),
                Point(0, 0),
                Colour.GREEN,
            )
            assert box == Box("00ff|a,b|3.5|None", [Point(0, 0), Point(1, 2)], Colour.GREEN)
            box = await calc.describe(b"", [], {}, Box("x", []), Point(3, 4), Colour.RED, "n")
            assert box.label == "||0|n"
            assert isinstance(box.points[0], Point)

    run(main())


def test_declared_errors_arrive_as_their_class() -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            with pytest.raises(NotFound, match="no entry 'missing'"):
                await calc.lookup("missing")
            with pytest.raises(Overdrawn, match="cannot withdraw 500"):
                await calc.withdraw(500)
            assert await calc.withdraw(30) == 70

    run(main())


def test_undeclared_errors_arrive_as_remote_error_with_type_and_traceback() -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            with pytest.raises(rpc.RemoteError) as info:
                await calc.divide(1, 0)
            assert info.value.remote_type == "ZeroDivisionError"
            assert info.value.message == "division by zero"
            assert "in divide" in info.value.traceback
            assert await calc.divide(1, 4) == 0.25  # the connection still works

    run(main())


def test_wrong_argument_types_name_the_parameter() -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            with pytest.raises(rpc.BadArguments, match=r"Calculator.add.*parameter 'b'"):
                await calc.add(1, "two")
            with pytest.raises(rpc.BadArguments, match=r"Calculator.add.*argument"):
                await calc.add(1)  # type: ignore[call-arg]
            with pytest.raises(rpc.BadArguments, match="cannot be encoded"):
                await calc.add(1, object())  # type: ignore[arg-type]
            assert await calc.add(1, 1) == 2

    run(main())


def test_a_result_of_the_wrong_type_is_bad_arguments_at_the_caller() -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            with pytest.raises(rpc.BadArguments, match="result that does not match"):
                await calc.wrong_result()

    run(main())


def test_unknown_service_method_and_object_are_named() -> None:
    @rpc.service
    class Other:
        async def ping(self) -> str: ...

    @rpc.service(name="Calculator")
    class CalculatorV2:
        async def add(self, a: int, b: int) -> int: ...

        async def multiply(self, a: int, b: int) -> int: ...

    async def main() -> None:
        async with await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()}) as server:
            client = rpc.Client(server.address)
            other = client.stub(Other)
            with pytest.raises(rpc.UnknownMethod, match=r"unknown service 'Other'.*Calculator"):
                await other.ping()
            newer = client.stub(CalculatorV2)
            with pytest.raises(rpc.UnknownMethod, match="has no method 'multiply'"):
                await newer.multiply(2, 3)
            assert await newer.add(2, 3) == 5
            ghost = client.stub(Calculator, object_id="ghost")
            with pytest.raises(rpc.UnknownMethod, match="no object 'ghost'"):
                await ghost.add(1, 1)
            await client.close()

    run(main())


def test_oneway_calls_return_at_once_and_run_on_the_server() -> None:
    async def main() -> None:
        impl = CalcImpl()
        async with calculator(impl) as (_, calc, _):
            assert await calc.log("one") is None
            await calc.log("two")
            async with asyncio.timeout(5):
                while len(impl.logged) < 2:
                    impl.log_event.clear()
                    await impl.log_event.wait()
            assert impl.logged == ["one", "two"]

    run(main())


def test_several_services_and_objects_on_one_server() -> None:
    @rpc.service
    class Counter:
        async def increment(self, by: int) -> int: ...

    class CounterImpl(Counter):
        def __init__(self) -> None:
            self.value = 0

        async def increment(self, by: int) -> int:
            self.value += by
            return self.value

    async def main() -> None:
        async with await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()}) as server:
            server.add(Counter, CounterImpl(), object_id="a")
            server.add(Counter, CounterImpl(), object_id="b")
            client = rpc.Client(server.address)
            a, b = client.stub(Counter, object_id="a"), client.stub(Counter, object_id="b")
            calc = client.stub(Calculator)
            assert [await a.increment(1), await a.increment(1), await b.increment(5)] == [1, 2, 5]
            assert await calc.add(2, 2) == 4
            server.remove(Counter, object_id="a")
            with pytest.raises(rpc.UnknownMethod):
                await a.increment(1)
            assert await b.increment(1) == 6
            server.add(Counter, CounterImpl(), object_id="a")  # a new object, same method slot
            assert await a.increment(3) == 3
            with pytest.raises(LocalProtocolError, match="already registered"):
                server.add(Counter, CounterImpl(), object_id="b")
            await client.close()

    run(main())


def test_server_sees_peers_and_their_disconnection() -> None:
    async def main() -> None:
        async with await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()}) as server:
            gone: list[rpc.Peer] = []
            lost = asyncio.Event()
            server.on_disconnect(lambda peer: (gone.append(peer), lost.set()))
            calc = await rpc.connect(Calculator, server.address)
            await calc.add(1, 1)
            [peer] = server.peers
            closed_by_callback: list[int] = []
            peer.on_close(lambda p: closed_by_callback.append(p.id))
            await rpc.close(calc)
            async with asyncio.timeout(5):
                await lost.wait()
            assert gone == [peer]
            assert peer.closed
            assert closed_by_callback == [peer.id]
            assert server.peers == []

    run(main())


def test_implementations_must_implement_the_interface() -> None:
    class Lazy(Calculator):
        pass

    async def main() -> None:
        with pytest.raises(LocalProtocolError, match=r"does not override Calculator\.add"):
            await rpc.serve("127.0.0.1:0", {Calculator: Lazy()})

    run(main())


def test_metadata_from_call_options_reaches_the_server() -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            assert await calc.metadata() == {}
            with rpc.call_options(metadata={"who": "me"}):
                with rpc.call_options(metadata={"trace": "t1"}):
                    assert await calc.metadata() == {"who": "me", "trace": "t1"}
                assert await calc.metadata() == {"who": "me"}

    run(main())


def test_each_call_sees_its_own_context() -> None:
    """The server shares a context between plain calls only while nothing marks it."""

    @rpc.service
    class Probe:
        async def mark(self, value: int) -> list[object]: ...

        async def where(self) -> str: ...

    class ProbeImpl(Probe):
        async def mark(self, value: int) -> list[object]:
            call = rpc.current_call()
            assert call is not None
            seen = call.extra.get("value")
            call.extra["value"] = value
            return [call.service, call.method, call.object_id, call.deadline, seen]

        async def where(self) -> str:
            call = rpc.current_call()
            assert call is not None
            return f"{call.method}@{call.object_id}"

    async def main() -> None:
        async with await rpc.serve("127.0.0.1:0", {Probe: ProbeImpl()}) as server:
            server.add(Probe, ProbeImpl(), object_id="x")
            probe = await rpc.connect(Probe, server.address)
            other = rpc.client_of(probe).stub(Probe, object_id="x")
            for value in range(4):
                assert await probe.mark(value) == ["Probe", "mark", "", None, None]
            assert await other.mark(3) == ["Probe", "mark", "x", None, None]
            # Calls to both objects interleaved in one burst (the server reads them together).
            stubs = [probe, other] * 16
            answers = await asyncio.gather(*(stub.mark(i) for i, stub in enumerate(stubs)))
            assert [answer[2] for answer in answers] == ["", "x"] * 16
            assert all(answer[4] is None for answer in answers)
            calls = [stub.where() for stub in [probe, probe, other, other, probe] * 8]
            assert (
                await asyncio.gather(*calls)
                == ["where@", "where@", "where@x", "where@x", "where@"] * 8
            )
            with rpc.call_options(timeout=30):
                [*_, deadline, seen] = await probe.mark(4)
            assert isinstance(deadline, float)
            assert seen is None
            await rpc.close(probe)

    run(main())


def test_connect_to_nothing_is_unavailable_and_names_the_address() -> None:
    async def main() -> None:
        server = await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()})
        address = server.address
        await server.close()
        with pytest.raises(rpc.Unavailable, match=address):
            await rpc.connect(Calculator, address, connect_timeout_s=2)

    run(main())


def test_cluster_mismatch_is_refused_with_both_names() -> None:
    async def main() -> None:
        async with await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()}, cluster="a") as s:
            with pytest.raises(rpc.Unavailable, match="cluster"):
                await rpc.connect(Calculator, s.address, cluster="b")

    run(main())


def test_blocking_stub_from_several_threads() -> None:
    """The blocking stub works without a loop in the calling threads, from many at once."""
    ready: list[str] = []
    stop = threading.Event()
    started = threading.Event()

    async def serve_until_stopped() -> None:
        async with await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()}) as server:
            ready.append(server.address)
            started.set()
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)

    thread = threading.Thread(target=lambda: run(serve_until_stopped()))
    thread.start()
    try:
        assert started.wait(10)
        with rpc.connect_blocking(Calculator, ready[0]) as calc:
            assert calc.add(1, 2) == 3
            assert calc.call(lambda c: c.add(3, 4)) == 7
            assert list(calc.count(4)) == [0, 1, 2, 3]
            assert calc.total([1.0, 2.5]) == 3.5
            with pytest.raises(NotFound):
                calc.lookup("missing")
            results: dict[int, list[int]] = {}

            def worker(n: int) -> None:
                results[n] = [calc.add(n, i) for i in range(50)]

            workers = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            assert results == {n: [n + i for i in range(50)] for n in range(4)}
    finally:
        stop.set()
        thread.join()

"""The node host in-process: the register answers clients over real sockets, timers fire on
the loop, storage survives a restart, bad client input is answered and others are served,
a protocol that raises stops its node, TLS keeps certificate-less clients out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from net_fixtures import LOOPS, make_cert_dirs, run, start_hosts, tls_with

from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered
from tejido.net.client import NodeClient
from tejido.net.connection import ConnectionClosed
from tejido.net.host import message_types
from tejido.net.mesh import MessageCodec
from tejido.net.storage import DiskStorage
from tejido.net.tls import TLSConfig
from tejido.protocols.register import Query, QueryReply, RegisterReplica, Store, StoreAck
from tejido.raft.messages import AppendEntries
from tejido.raft.node import RaftNode


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_register_answers_clients_on_any_node(tmp_path: Path, loop: str) -> None:
    async def body() -> None:
        hosts = await start_hosts(tmp_path, RegisterReplica)
        clients = [await NodeClient.connect(h.address or "", cluster="t") for h in hosts]
        try:
            assert await clients[0].submit(Operation("write", "x", 7)) == Outcome("ok", 7)
            assert await clients[2].submit(Operation("read", "x")) == Outcome("ok", 7)
            wrong = await clients[1].submit(Operation("cas", "x", (7, 8)))
            assert wrong.type == "fail"
            assert "register supports read and write, not cas" in (wrong.error or "")
            # A replica acknowledges a store only after an fsync covering it (register rule
            # 4), so the majority that acknowledged the write has synced; which majority it
            # was (the coordinator's own fsync may still be running) is up to the scheduler.
            synced = [h.node_id for h in hosts if h.stats()["fsyncs"] != 0]
            assert len(synced) >= 2, f"only {synced} synced"
        finally:
            for client in clients:
                await client.close()
            for host in hosts:
                await host.stop()
        # the acknowledged write is on the disks of at least a quorum of replicas
        holding = 0
        for host in hosts:
            storage = DiskStorage(tmp_path / f"n{host.node_id}", on_durable=lambda t: None)
            holding += "register/x" in storage.open().state
            storage.abandon()
        assert holding >= 2

    run(body(), loop)


def test_a_bad_client_frame_is_answered_and_other_requests_still_served(
    tmp_path: Path, loop: str
) -> None:
    async def body() -> None:
        (host,) = await start_hosts(tmp_path, RegisterReplica, n=1)
        client = await NodeClient.connect(host.address or "", cluster="t")
        other = await NodeClient.connect(host.address or "", cluster="t")
        client.conn.send(msgspec.msgpack.encode({"id": "seven"}))
        assert await client.submit(Operation("write", "k", 1)) == Outcome("ok", 1)
        assert len(client.errors) == 1
        assert client.errors[0].startswith("not a ClientRequest:")
        assert await other.submit(Operation("read", "k")) == Outcome("ok", 1)
        await client.close()
        await other.close()
        await host.stop()

    run(body(), loop)


class Ticker(Process):
    """Sets two timers and cancels one; each firing appends a record and syncs it."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.fired: list[str] = []
        self.durable: list[int] = []
        self.recovered: Recovered | None = None
        self.synced = asyncio.Event()  #: set once two records are durable

    def on_start(self, recovered: Recovered) -> None:
        self.recovered = recovered
        self.set_timer("tick", 0.02)
        self.set_timer("gone", 0.01)
        self.cancel_timer("gone")
        self.set_timer("later", 5.0)
        self.set_timer("later", 0.03)  # replaces the 5 s timer

    def on_timer(self, name: TimerName) -> None:
        self.fired.append(name)
        self.append(name.encode())
        self.sync()

    def on_durable(self, token: int) -> None:
        self.durable.append(token)
        if len(self.durable) == 2:
            self.synced.set()

    def on_command(self, request: RequestId, operation: Operation) -> None:
        self.reply(request, Outcome("ok", ",".join(self.fired)))


def test_timers_fire_on_the_loop_and_synced_records_survive_a_restart(
    tmp_path: Path, loop: str
) -> None:
    async def body() -> tuple[list[str], list[int], Recovered | None]:
        (host,) = await start_hosts(tmp_path, Ticker, n=1)
        ticker = host.process
        assert isinstance(ticker, Ticker)
        async with asyncio.timeout(30):  # bounds a hang only
            await ticker.synced.wait()
        fired = list(ticker.fired)
        host.storage.abandon()  # crash: no clean shutdown
        host._stopped = True
        assert host.mesh is not None
        await host.mesh.close()
        (again,) = await start_hosts(tmp_path, Ticker, n=1)
        restarted = again.process
        assert isinstance(restarted, Ticker)
        await again.stop()
        return fired, ticker.durable, restarted.recovered

    fired, durable, recovered = run(body(), loop)
    assert fired == ["tick", "later"]
    assert durable == [1, 2]
    assert recovered is not None
    assert recovered.records == (b"tick", b"later")


class Explodes(Process):
    def on_command(self, request: RequestId, operation: Operation) -> None:
        raise ValueError(f"cannot {operation.f}")


def test_a_protocol_that_raises_stops_its_node(tmp_path: Path, loop: str) -> None:
    async def body() -> None:
        (host,) = await start_hosts(tmp_path, Explodes, n=1)
        client = await NodeClient.connect(host.address or "", cluster="t")
        assert host.failed is not None
        stopping = asyncio.ensure_future(client.submit(Operation("write", "k", 1), timeout=30))
        async with asyncio.timeout(30):  # bounds a hang only: the node fails on receipt
            reason = await asyncio.shield(host.failed)
        assert reason == "ValueError: cannot write"
        after = await client.submit(Operation("read", "k"))
        assert after == Outcome("fail", error="the node is stopping")
        # One connection's requests are handled in order and a stopping node answers at
        # once: had the node answered the request that stopped it, that answer came first.
        assert not stopping.done()
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        await client.close()
        await host.stop()

    run(body(), loop)


def test_with_tls_only_clients_with_a_cluster_certificate_get_answers(
    tmp_path: Path, loop: str
) -> None:
    dirs = make_cert_dirs(tmp_path / "certs")
    good = dirs["good"]
    tls = {NodeId(n): TLSConfig.from_dir(good, f"n{n}") for n in (1, 2, 3)}

    async def body() -> None:
        hosts = await start_hosts(tmp_path, RegisterReplica, tls=tls)
        address = hosts[0].address or ""
        client_tls = TLSConfig.from_dir(good, "client").client_context()
        client = await NodeClient.connect(address, cluster="t", ssl=client_tls)
        assert await client.submit(Operation("write", "x", 1)) == Outcome("ok", 1)
        await client.close()
        for bad in (tls_with(good, None, ""), tls_with(good, dirs["other"], "n1")):
            with pytest.raises(ConnectionClosed, match="TLS: it may have refused"):
                await NodeClient.connect(address, cluster="t", ssl=bad.client_context())
        for host in hosts:
            await host.stop()

    run(body(), loop)


def test_message_types_are_found_from_the_process_class() -> None:
    assert message_types(RegisterReplica) == (Query, QueryReply, Store, StoreAck)
    raft = message_types(RaftNode)
    assert AppendEntries in raft
    assert all(issubclass(t, Message) for t in raft)

    class Declared(Process):
        MESSAGES = (Query,)

    assert message_types(Declared) == (Query,)
    # a process in a top-level module without messages has none (not every test module's)
    import net_fixtures  # noqa: F401 - defines Message subclasses in another top-level module

    assert message_types(Ticker) == ()
    with pytest.raises(msgspec.DecodeError, match="this protocol takes no messages"):
        MessageCodec(()).decode(b"\x80")

"""Bad input at real member processes (issue 5, "Bad input") while other clients work.

A 3-member cluster of `tejido node start` processes serves a read / write / cas load from
three client processes (`tejido.store.nemesis`) while this test sends it, at the leader
and at a follower: keys and values over the 1.5 MiB request limit, a transaction with too
many operations, unknown and expired leases, a leader-only request to a follower, an
unknown method, arguments of the wrong types, and raw bytes on the client port. Each gets
a typed error naming the problem (raw bytes: a `Refuse` or protocol-violation frame, or
the connection closed when the bytes are not even frames). Then: every member is still
running, the load kept completing operations, and the load's history is linearizable
with no acknowledged write lost and every member holding the same data.

(``tests/store/test_store_node.py`` covers the same requests on in-process members.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tejido import rpc
from tejido.mvcc import api
from tejido.net.frames import encode_frame
from tejido.net.handshake import Hello, Refuse, decode_handshake, encode_handshake
from tejido.store.client import Client
from tejido.store.errors import NotApplied, NotLeader, StoreError
from tejido.store.nemesis import NemesisReport, NemesisRun
from tejido.store.service import KV

LIMIT = 3 * 512 * 1024  # the default max_request_bytes (etcd's 1.5 MiB)


@rpc.service(name="tejido.store.KV")
class RogueKV:
    """The store's service name with a method it does not have and a mistyped one."""

    async def explode(self, how_much: int) -> int: ...

    async def range(self, request: str, serializable: str) -> str: ...


async def _exchange(address: str, payload: bytes) -> bytes:
    """Send raw bytes to a member's client port; everything it answers until it closes."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10.0)
    finally:
        writer.close()


def _frames(data: bytes) -> list[bytes]:
    frames = []
    while len(data) >= 4:
        size = int.from_bytes(data[:4], "big")
        frames.append(data[4 : 4 + size])
        data = data[4 + size :]
    return frames


async def _store_errors(client: Client) -> None:
    with pytest.raises(StoreError, match="over the 1572864-byte limit") as big_key:
        await client.put(b"k" * (LIMIT + 1), "v")
    assert big_key.value.code == "request_too_large"
    with pytest.raises(StoreError, match="request_too_large"):
        await client.put("big", b"x" * (LIMIT + 1))
    with pytest.raises(StoreError, match="request_too_large"):
        await client.get(b"q" * (LIMIT + 1))
    put = api.PutRequest(key=b"t", value=b"v")
    with pytest.raises(StoreError) as too_many:
        await client.txn(api.TxnRequest(success=[put] * (api.MAX_TXN_OPS + 1)))
    assert too_many.value.code == "too_many_ops"
    with pytest.raises(StoreError) as unknown:
        await client.put("leased", "v", lease=424242)
    assert unknown.value.code == "lease_not_found"
    with pytest.raises(StoreError, match="lease_not_found"):
        await client.lease_keepalive(424242)


async def _expired_lease(client: Client) -> None:
    grant = await client.lease_grant(1)
    await client.put("ephemeral", "x", lease=grant.id)

    async def expired() -> bool:
        listed = await client.leases()
        return grant.id not in [lease.id for lease in listed.leases]

    deadline = asyncio.get_running_loop().time() + 15.0
    while not await expired():
        assert asyncio.get_running_loop().time() < deadline, "the lease never expired"
        await asyncio.sleep(0.1)  # poll interval while the leader's lessor expires it
    with pytest.raises(StoreError) as late:
        await client.put("ephemeral", "again", lease=grant.id)
    assert late.value.code == "lease_not_found"
    with pytest.raises(StoreError, match="lease_not_found"):
        await client.lease_keepalive(grant.id)
    assert await client.get("ephemeral") is None  # its key went with it


async def _rpc_errors(run: NemesisRun, leader: int, follower: int) -> None:
    stub = await rpc.connect(KV, run.member(follower).client)
    try:
        with pytest.raises(NotLeader) as refused:
            await stub.lease_keepalive(1)
        assert refused.value.address == run.member(leader).client
    finally:
        await rpc.close(stub)
    rogue = await rpc.connect(RogueKV, run.member(leader).client)
    try:
        with pytest.raises(rpc.UnknownMethod, match="explode"):
            await rogue.explode(1)
        with pytest.raises(rpc.BadArguments, match="request"):
            await rogue.range("not a RangeRequest", "not a bool")
    finally:
        await rpc.close(rogue)


async def _raw_bytes(address: str) -> None:
    (answer,) = _frames(await _exchange(address, encode_frame(b"\x93garbage")))
    refusal = decode_handshake(answer)
    assert isinstance(refusal, Refuse)
    assert "expected a tejido handshake" in refusal.reason
    hello = encode_handshake(Hello(cluster="tejido", node="fuzzer", purpose="rpc"))
    frames = _frames(await _exchange(address, encode_frame(hello) + encode_frame(b"\xc1\xc1")))
    assert len(frames) == 2  # Welcome, then the violation, then the close
    assert b"protocol violation" in frames[1]
    assert await _exchange(address, b"\xff\xff\xff\xff" + b"x" * 64) == b""  # 4 GiB frame
    assert await _exchange(address, b"GET / HTTP/1.1\r\nHost: tejido\r\n\r\n") == b""


@pytest.mark.integration
def test_bad_input_at_real_members_gets_typed_errors_and_loses_nothing(tmp_path: Path) -> None:
    async def main() -> NemesisReport:
        run = NemesisRun(tmp_path / "run", workers=3, clients_per_worker=1)
        try:
            await run.start()
            run.start_load()
            await run.progress(20)
            leader = await run.leader()
            follower = next(m.id for m in run.local.members if m.id != leader)
            for target in (leader, follower):
                address = run.member(target).client
                async with Client([address], timeout_s=10.0) as client:
                    await _store_errors(client)
                await _raw_bytes(address)
            async with Client(run.endpoints, timeout_s=10.0) as client:
                await _expired_lease(client)
            await _rpc_errors(run, leader, follower)
            with pytest.raises(NotApplied):
                Client([])
            await run.progress(20)  # the load kept going
            await run.stop_load()
            running = [m.id for m in run.local.members if m.process and m.process.poll() is None]
            assert running == [1, 2, 3]
            report = NemesisReport("bad input", run.directory)
            await run.final_check(report)
            return report
        finally:
            await run.close()

    report = asyncio.run(main())
    assert report.ok, report.describe()
    assert report.operations.get("write ok", 0) > 0

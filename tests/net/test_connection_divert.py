"""`FramedConnection.divert`: a receiver takes the connection's reads over on a real
transport (asyncio and uvloop, plain TCP and TLS) and hands back the reads it does not
handle itself; every frame still arrives once, in order, whichever way each read went."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from net_fixtures import LOOPS, make_cert_dirs, run, tls_with

from tejido.net.connection import FramedConnection, connect, serve
from tejido.net.handshake import Hello


class Diverting:
    """Takes every read; handles the reads that are one 1-byte frame itself."""

    def __init__(self, conn: FramedConnection) -> None:
        self.conn = conn
        self.frames: list[bytes] = []
        self.handled_here = 0
        self.passed_on = 0
        self.complete = asyncio.Event()
        self.expected = 0
        conn.divert(self.data_received)

    def data_received(self, data: bytes) -> None:
        if len(data) == 5 and data[:4] == b"\0\0\0\x01" and not self.conn._decoder.buffered:
            self.handled_here += 1
            self.frame_received(data[4:])
            return
        self.passed_on += 1
        FramedConnection.data_received(self.conn, data)

    def frame_received(self, payload: bytes) -> None:
        self.frames.append(payload)
        if len(self.frames) >= self.expected:
            self.complete.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.complete.set()


@pytest.fixture(scope="module")
def cert_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_cert_dirs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_a_diverted_connection_delivers_every_frame_once_in_order(
    loop: str, tls: bool, cert_dirs: dict[str, Path]
) -> None:
    payloads = [bytes([i % 256]) * (1 + (i % 3) * 700) for i in range(60)]

    async def main() -> None:
        receivers: list[Diverting] = []

        def accept(conn: FramedConnection, hello: Hello) -> Diverting:
            receiver = Diverting(conn)
            receiver.expected = len(payloads)
            receivers.append(receiver)
            return receiver

        server_tls = tls_with(cert_dirs["good"], cert_dirs["good"], "n2") if tls else None
        client_tls = tls_with(cert_dirs["good"], cert_dirs["good"], "n1") if tls else None
        server = await serve(
            "127.0.0.1:0",
            cluster="test",
            node="2",
            purposes=("peer",),
            accept=accept,
            ssl=server_tls.server_context() if server_tls else None,
        )
        port = server.sockets[0].getsockname()[1]
        conn = await connect(
            f"127.0.0.1:{port}",
            Hello("test", "1", "peer"),
            ssl=client_tls.client_context() if client_tls else None,
            server_hostname="n2" if tls else None,
        )
        for payload in payloads:  # small ones alone, larger ones may share or split reads
            conn.send(payload)
            if len(payload) == 1:
                conn.flush()
                await conn.drain()
        conn.flush()
        [receiver] = receivers
        async with asyncio.timeout(10.0):
            await receiver.complete.wait()
        assert receiver.frames == payloads
        assert receiver.passed_on > 0  # the reads went through the diverted function
        conn.close()
        server.close()
        await server.wait_closed()

    run(main(), loop)

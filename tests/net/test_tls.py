"""Mutual TLS: only certificates signed by the cluster CA get in, on raw connections and on
the mesh; no certificate, another CA's, or a self-signed one is refused."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from net_fixtures import LOOPS, Inbox, Ping, make_cert_dirs, run, start_mesh, tls_with

from tejido.core.errors import BadInput
from tejido.core.ids import NodeId
from tejido.net.connection import ConnectionClosed, FramedConnection, connect, serve
from tejido.net.handshake import Hello, Welcome
from tejido.net.tls import TLSConfig


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def cert_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_cert_dirs(tmp_path_factory.mktemp("certs"))


class _Sink:
    def frame_received(self, payload: bytes) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


async def _try_connect(server_tls: TLSConfig, client_tls: TLSConfig | None) -> tuple[object, int]:
    """Connect once; returns (the Welcome or the exception raised, connections accepted)."""
    accepted: list[Hello] = []

    def accept(conn: FramedConnection, hello: Hello) -> _Sink:
        accepted.append(hello)
        return _Sink()

    server = await serve(
        "127.0.0.1:0",
        cluster="test",
        node="2",
        purposes=("peer",),
        accept=accept,
        ssl=server_tls.server_context(),
    )
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await connect(
            f"127.0.0.1:{port}",
            Hello("test", "1", "peer"),
            ssl=client_tls.client_context() if client_tls else None,
            timeout=5,
        )
    except (OSError, ConnectionClosed, TimeoutError) as exc:
        result: object = exc
    else:
        result = conn.remote
        conn.close()
    server.close()
    return result, len(accepted)


@pytest.mark.parametrize("client", ["no certificate", "another CA", "self-signed", "plain TCP"])
def test_a_client_without_a_cluster_certificate_is_refused(
    cert_dirs: dict[str, Path], client: str, loop: str
) -> None:
    good = cert_dirs["good"]
    client_tls = {
        "no certificate": tls_with(good, None, "n1"),
        "another CA": tls_with(good, cert_dirs["other"], "n1"),
        "self-signed": tls_with(good, cert_dirs["self"], "n1"),
        "plain TCP": None,
    }[client]
    result, accepted = run(_try_connect(TLSConfig.from_dir(good, "n2"), client_tls), loop)
    assert isinstance(result, ConnectionClosed), result
    assert "closed the connection during the handshake" in str(result)
    assert accepted == 0  # the server never saw a Hello: TLS refused it first


def test_a_client_with_a_cluster_certificate_connects(cert_dirs: dict[str, Path]) -> None:
    good = cert_dirs["good"]
    result, accepted = asyncio.run(
        _try_connect(TLSConfig.from_dir(good, "n2"), TLSConfig.from_dir(good, "client"))
    )
    assert result == Welcome(cluster="test", node="2")
    assert accepted == 1


def test_a_server_with_a_foreign_certificate_is_refused_by_the_client(
    cert_dirs: dict[str, Path], loop: str
) -> None:
    good, other = cert_dirs["good"], cert_dirs["other"]
    server_tls = TLSConfig(other / "ca.pem", other / "n2.pem", other / "n2.key")
    result, _ = run(_try_connect(server_tls, TLSConfig.from_dir(good, "n1")), loop)
    assert isinstance(result, ssl.SSLCertVerificationError)
    assert "certificate verify failed" in str(result)


def test_missing_certificate_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"TLS CA certificate '.*ca\.pem' does not exist"):
        TLSConfig.from_dir(tmp_path, "n1").server_context()


async def _mesh_pair(
    cert_dirs: dict[str, Path], n1_certs: Path, n1_name: str = "n1"
) -> tuple[Inbox, Inbox, str]:
    """Node 1 (certificate from `n1_certs`) dials node 2 (a proper cluster certificate)."""
    good = cert_dirs["good"]
    inbox1, inbox2 = Inbox(), Inbox()
    mesh2, addr2 = await start_mesh(2, {1: "unused:1"}, inbox2, tls=TLSConfig.from_dir(good, "n2"))
    mesh1, _ = await start_mesh(1, {2: addr2}, inbox1, tls=tls_with(good, n1_certs, n1_name))
    mesh1.start()
    link = mesh1.links[NodeId(2)]
    try:
        done = asyncio.ensure_future(link.up.wait())
        failed = asyncio.ensure_future(link.failed.wait())
        await asyncio.wait([done, failed], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        failed.cancel()
        if link.conn is not None:
            mesh1.send(NodeId(2), Ping(1))
            await inbox2.wait_for(lambda: len(inbox2.got) == 1)
        return inbox1, inbox2, link.last_error or ""
    finally:
        await mesh1.close()
        await mesh2.close()


def test_the_mesh_connects_nodes_with_cluster_certificates(
    cert_dirs: dict[str, Path], loop: str
) -> None:
    _, inbox2, error = run(_mesh_pair(cert_dirs, cert_dirs["good"]), loop)
    assert inbox2.got == [(1, Ping(1))]
    assert error == ""


@pytest.mark.parametrize("which", ["other", "self"])
def test_the_mesh_refuses_a_node_with_a_foreign_certificate(
    cert_dirs: dict[str, Path], which: str, loop: str
) -> None:
    _, inbox2, error = run(_mesh_pair(cert_dirs, cert_dirs[which]), loop)
    assert "cannot connect to node 2" in error
    assert "closed the connection during the handshake" in error
    assert inbox2.got == []


def test_the_mesh_refuses_a_client_certificate_posing_as_a_node(
    cert_dirs: dict[str, Path], loop: str
) -> None:
    _, inbox2, error = run(_mesh_pair(cert_dirs, cert_dirs["good"], "client"), loop)
    assert "node 1's TLS certificate names ['client', 'localhost'], not 'n1'" in error
    assert inbox2.got == []

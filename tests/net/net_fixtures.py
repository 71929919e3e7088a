"""Helpers for the net tests: certificate directories, a test message type, meshes, and
clusters of node hosts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.net import certs
from tejido.net.host import NodeHost
from tejido.net.mesh import Backoff, Mesh, MessageCodec
from tejido.net.tls import TLSConfig

T = TypeVar("T")

#: Event loops the runtime must work on: the stdlib's and uvloop (the default on Linux).
LOOPS = ["asyncio", "uvloop"]


def run(coro: Coroutine[Any, Any, T], loop: str = "uvloop") -> T:
    """Run `coro` to completion on a fresh event loop of the given kind."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


class Ping(Message, frozen=True):
    n: int
    pad: bytes = b""


class Pong(Message, frozen=True):
    n: int


CODEC = MessageCodec([Ping, Pong])


def make_cert_dirs(base: Path) -> dict[str, Path]:
    """``good`` (CA + n1..n3 + client), ``other`` (another CA's n1..n3), ``self`` (self-signed)."""
    good, other, own = base / "good", base / "other", base / "self"
    certs.init_ca(good, "test")
    for name in ("n1", "n2", "n3", "client"):
        certs.issue(good, name)
    certs.init_ca(other, "impostors")
    for name in ("n1", "n2", "n3"):
        certs.issue(other, name)
    for name in ("n1", "n2", "n3"):
        certs.self_signed(own, name)
    return {"good": good, "other": other, "self": own}


def tls_with(ca_dir: Path, cert_dir: Path | None, name: str) -> TLSConfig:
    """Trust `ca_dir`'s CA; present `cert_dir/name` (None: no certificate at all)."""
    if cert_dir is None:
        return TLSConfig(ca_dir / "ca.pem", None, None)
    return TLSConfig(ca_dir / "ca.pem", cert_dir / f"{name}.pem", cert_dir / f"{name}.key")


class Inbox:
    """Collects delivered messages; `wait_for(predicate)` waits on the condition itself."""

    def __init__(self) -> None:
        self.got: list[tuple[NodeId, Message]] = []
        self._changed = asyncio.Event()

    def __call__(self, src: NodeId, message: Message) -> None:
        self.got.append((src, message))
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


async def start_mesh(
    node: int,
    peers: Mapping[int, str],
    inbox: Inbox,
    *,
    address: str = "127.0.0.1:0",
    cluster: str = "test",
    tls: TLSConfig | None = None,
    **kwargs: object,
) -> tuple[Mesh, str]:
    mesh = Mesh(
        NodeId(node),
        {NodeId(n): a for n, a in peers.items()},
        cluster=cluster,
        codec=CODEC,
        on_message=inbox,
        server_ssl=tls.server_context() if tls else None,
        client_ssl=tls.client_context() if tls else None,
        backoff=Backoff(0.01, 0.2, random.Random(node)),
        **kwargs,  # type: ignore[arg-type]
    )
    bound = await mesh.listen(address)
    return mesh, bound


async def start_hosts(
    base: Path,
    factory: object,
    n: int = 3,
    *,
    cluster: str = "t",
    tls: Mapping[int, TLSConfig] | None = None,
    storage: Mapping[int, Any] | None = None,
) -> list[NodeHost]:
    """n hosts on ephemeral ports: each listens first, then learns the others' addresses.
    `tls` and `storage` (a storage class) are per node id; absent ids get the defaults."""
    import socket

    socks = []
    for _ in range(n):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        socks.append(sock)
    addresses = {NodeId(i + 1): f"127.0.0.1:{s.getsockname()[1]}" for i, s in enumerate(socks)}
    hosts = []
    for i, sock in enumerate(socks):
        me = NodeId(i + 1)
        host = NodeHost(
            node_id=me,
            peers={p: a for p, a in addresses.items() if p != me},
            factory=factory,  # type: ignore[arg-type]
            data_dir=base / f"n{me}",
            cluster=cluster,
            tls=tls.get(me) if tls else None,
            storage=storage.get(me) if storage else None,
        )
        await host.start(sock=sock)
        hosts.append(host)
    return hosts

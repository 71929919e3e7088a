"""How the ranks of a tcp-backend job find, connect to and authenticate each other.

`tejido mpirun` (`tejido.mpi.launcher`) starts every rank with these environment variables:
``TEJIDO_MPI_JOB`` (job id), ``TEJIDO_MPI_SECRET`` (32 random bytes, hex), ``TEJIDO_MPI_RANK``,
``TEJIDO_MPI_SIZE`` and ``TEJIDO_MPI_DIR`` (a private rendezvous directory, mode 0700), and
optionally ``TEJIDO_MPI_TIMEOUT`` (seconds of silence before a peer counts as failed,
default 60, 0 = never; see the heartbeats of `tejido.mpi.engine`).

Steps, for rank r:
1. Listen on an ephemeral port with tejido's transport (`tejido.net.connection.serve`) and
   publish ``HOST:PORT`` in ``DIR/rank<r>.addr`` (written then renamed, so readers never
   see half a file). Jobs started from a host file have no shared directory: they get
   ``TEJIDO_MPI_RENDEZVOUS=HOST:PORT`` instead and exchange addresses through the
   launcher (`tejido.mpi.rendezvous`); ``TEJIDO_MPI_HOST`` is then the address to listen
   on and ``TEJIDO_MPI_ADVERTISE`` the name the others reach it by.
2. Connect to every lower rank (`tejido.net.connection.connect`); accept every higher one.
   The tejido handshake checks the wire version and that both belong to cluster
   ``mpi-<job id>`` and purpose ``mpi``: a stray tejido node is refused by name.
3. The job id is not a secret (it appears in refusals), so the secret is proven with a
   mutual HMAC-SHA256 challenge over tejido frames: the connecting rank sends
   `AuthRequest` (its rank and a fresh nonce); the accepting rank answers `AuthChallenge`
   (its own nonce and an HMAC of both nonces and both ranks, proving it holds the
   secret); the connecting rank checks it and answers `AuthProof` (its HMAC over the same
   transcript with another label). The secret itself never crosses the wire, fresh nonces
   on both sides defeat replay, and a wrong proof gets `AuthFailed` and a closed
   connection while the listener keeps serving the other ranks.
4. Only then is the socket handed to the progress engine (`tejido.mpi.engine`), which
   reads and writes it directly (``recv_into`` into receive buffers); so pickled objects
   are only ever decoded from authenticated peers. The accepting rank sends a READY
   frame first, so nothing the engine sends can be read by the handshake's decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import msgspec

from tejido.core.errors import BadInput
from tejido.mpi.api import AuthenticationFailed, MPIError
from tejido.mpi.rendezvous import register
from tejido.mpi.wire import _LEN, _META, HEADER_SIZE, READY, encode_header
from tejido.net.connection import FramedConnection, connect, serve
from tejido.net.handshake import HandshakeRefused, Hello

__all__ = ["DEFAULT_HEARTBEAT_TIMEOUT_S", "JobInfo", "connect_job", "job_from_env"]

PURPOSE = "mpi"
#: Default seconds of silence after which a peer counts as failed (see tejido.mpi.engine).
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0
#: Seconds of silence before TCP keepalive starts probing a peer.
KEEPALIVE_IDLE_S = 10
NONCE_BYTES = 16


class AuthRequest(msgspec.Struct, frozen=True, tag=True):
    rank: int
    nonce: bytes


class AuthChallenge(msgspec.Struct, frozen=True, tag=True):
    nonce: bytes
    proof: bytes


class AuthProof(msgspec.Struct, frozen=True, tag=True):
    proof: bytes


class AuthFailed(msgspec.Struct, frozen=True, tag=True):
    reason: str


_AuthMessage = AuthRequest | AuthChallenge | AuthProof | AuthFailed
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_AuthMessage).decode


@dataclass(frozen=True)
class JobInfo:
    """What a rank learns from its launcher's environment."""

    job: str
    secret: bytes
    rank: int
    size: int
    directory: Path
    host: str = "127.0.0.1"
    connect_timeout_s: float = 30.0
    #: Silence after which a peer counts as failed (``TEJIDO_MPI_TIMEOUT``; 0: never).
    heartbeat_timeout_s: float = 60.0
    #: ``HOST:PORT`` of the launcher's TCP rendezvous (host files), else None: `directory`.
    rendezvous: str | None = None
    #: The host name other ranks reach this one at (default: `host`).
    advertise: str | None = None
    #: Each rank's host (same string: same machine); empty when unknown (all on one host).
    nodes: tuple[str, ...] = ()

    @property
    def cluster(self) -> str:
        return f"mpi-{self.job}"


def job_from_env(env: dict[str, str] | None = None) -> JobInfo | None:
    """The job this process belongs to, or None when it was not started by `tejido mpirun`."""
    env = dict(os.environ) if env is None else env
    if "TEJIDO_MPI_SIZE" not in env:
        return None
    try:
        size = int(env["TEJIDO_MPI_SIZE"])
        rank = int(env["TEJIDO_MPI_RANK"])
        secret = bytes.fromhex(env["TEJIDO_MPI_SECRET"])
        job = env["TEJIDO_MPI_JOB"]
        rendezvous = env.get("TEJIDO_MPI_RENDEZVOUS") or None
        directory = Path(
            env["TEJIDO_MPI_DIR"] if rendezvous is None else env.get("TEJIDO_MPI_DIR", ".")
        )
        timeout = float(env.get("TEJIDO_MPI_CONNECT_TIMEOUT", "30"))
        heartbeat = float(env.get("TEJIDO_MPI_TIMEOUT", str(DEFAULT_HEARTBEAT_TIMEOUT_S)))
    except (KeyError, ValueError) as exc:
        raise BadInput(f"bad tejido mpirun environment: {exc!r}") from None
    if not 0 <= rank < size or len(secret) < 16:
        raise BadInput(f"bad tejido mpirun environment: rank {rank} of size {size}")
    nodes = env.get("TEJIDO_MPI_NODES", "")
    if nodes and len(nodes.split(",")) != size:
        raise BadInput(f"bad tejido mpirun environment: TEJIDO_MPI_NODES names not {size} ranks")
    if not heartbeat >= 0:
        raise BadInput(f"TEJIDO_MPI_TIMEOUT must be >= 0 seconds, got {heartbeat}")
    return JobInfo(
        job,
        secret,
        rank,
        size,
        directory,
        env.get("TEJIDO_MPI_HOST", "127.0.0.1"),
        timeout,
        heartbeat,
        rendezvous,
        env.get("TEJIDO_MPI_ADVERTISE") or None,
        tuple(env["TEJIDO_MPI_NODES"].split(",")) if env.get("TEJIDO_MPI_NODES") else (),
    )


def _mac(
    secret: bytes, label: bytes, job: str, client: int, server: int, nc: bytes, ns: bytes
) -> bytes:
    transcript = b"|".join(
        [label, job.encode(), str(client).encode(), str(server).encode(), nc, ns]
    )
    return hmac.new(secret, transcript, hashlib.sha256).digest()


def _detach(conn: FramedConnection) -> socket.socket:
    """A blocking socket on the connection's file descriptor, the transport closed."""
    transport = conn._transport
    if transport is None:
        raise MPIError("connection has no transport")
    raw = transport.get_extra_info("socket")
    sock = socket.socket(fileno=os.dup(raw.fileno()))
    sock.setblocking(True)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A peer host that vanishes without closing the connection is noticed by TCP
    # keepalive after about KEEPALIVE_IDLE_S + 3 probes 2 s apart.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    conn._receiver = None
    transport.close()
    return sock


class _Acceptor:
    """Server side of step 3 for one incoming connection."""

    def __init__(
        self,
        job: JobInfo,
        conn: FramedConnection,
        rank: int,
        done: asyncio.Future[tuple[int, socket.socket]],
        on_refused: list[str],
    ) -> None:
        self.job = job
        self.conn = conn
        self.rank = rank
        self.done = done
        self.nonce_c = b""
        self.nonce_s = secrets.token_bytes(NONCE_BYTES)
        self.on_refused = on_refused

    def frame_received(self, payload: bytes) -> None:
        try:
            message = _decode(payload)
        except msgspec.DecodeError:
            self._refuse("not an authentication message")
            return
        match message:
            case AuthRequest(rank=rank, nonce=nonce) if rank == self.rank and not self.nonce_c:
                self.nonce_c = nonce
                proof = _mac(
                    self.job.secret,
                    b"server",
                    self.job.job,
                    rank,
                    self.job.rank,
                    nonce,
                    self.nonce_s,
                )
                self.conn.send(_encode(AuthChallenge(self.nonce_s, proof)))
            case AuthProof(proof=proof) if self.nonce_c:
                want = _mac(
                    self.job.secret,
                    b"client",
                    self.job.job,
                    self.rank,
                    self.job.rank,
                    self.nonce_c,
                    self.nonce_s,
                )
                if not hmac.compare_digest(proof, want):
                    self._refuse("wrong job secret")
                    return
                self.conn.pause_reading()
                sock = _detach(self.conn)
                sock.sendall(encode_header(READY, 0, 0, 0))
                if not self.done.done():
                    self.done.set_result((self.rank, sock))
            case _:
                self._refuse(f"unexpected {type(message).__name__}")

    def _refuse(self, reason: str) -> None:
        self.on_refused.append(f"rank {self.rank}: {reason}")
        with contextlib.suppress(Exception):
            self.conn.send(_encode(AuthFailed(reason)))
        self.conn.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        return None


class _Connector:
    """Client side of step 3."""

    def __init__(self, job: JobInfo, conn: FramedConnection, server: int) -> None:
        self.job = job
        self.conn = conn
        self.server = server
        self.nonce_c = secrets.token_bytes(NONCE_BYTES)
        self.result: asyncio.Future[socket.socket] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        self.conn.send(_encode(AuthRequest(self.job.rank, self.nonce_c)))

    def frame_received(self, payload: bytes) -> None:
        if self.result.done():
            return
        try:
            message = _decode(payload)
        except msgspec.DecodeError:
            self.result.set_exception(
                AuthenticationFailed(
                    f"rank {self.server} answered with something that is not authentication"
                )
            )
            return
        match message:
            case AuthChallenge(nonce=nonce_s, proof=proof):
                want = _mac(
                    self.job.secret,
                    b"server",
                    self.job.job,
                    self.job.rank,
                    self.server,
                    self.nonce_c,
                    nonce_s,
                )
                if not hmac.compare_digest(proof, want):
                    self.conn.abort()
                    self.result.set_exception(
                        AuthenticationFailed(f"rank {self.server} does not hold this job's secret")
                    )
                    return
                self.conn.pause_reading()
                mine = _mac(
                    self.job.secret,
                    b"client",
                    self.job.job,
                    self.job.rank,
                    self.server,
                    self.nonce_c,
                    nonce_s,
                )
                self.conn.send(_encode(AuthProof(mine)))
                self.conn.flush()
                self.result.set_result(_detach(self.conn))
            case AuthFailed(reason=reason):
                self.result.set_exception(
                    AuthenticationFailed(f"rank {self.server} refused us: {reason}")
                )
            case _:
                self.result.set_exception(
                    AuthenticationFailed(
                        f"rank {self.server} sent an unexpected {type(message).__name__}"
                    )
                )

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.result.done():
            self.result.set_exception(
                AuthenticationFailed(
                    f"rank {self.server} closed the connection during authentication"
                )
            )


def _address_file(job: JobInfo, rank: int) -> Path:
    return job.directory / f"rank{rank}.addr"


async def _wait_for_address(job: JobInfo, rank: int) -> str:
    path = _address_file(job, rank)
    delay = 0.002
    while not path.exists():
        await asyncio.sleep(delay)  # a file rendezvous: poll, backing off to 50 ms
        delay = min(delay * 2, 0.05)
    return path.read_text().strip()


async def _connect_all(job: JobInfo) -> dict[int, socket.socket]:
    loop = asyncio.get_running_loop()
    higher: dict[int, asyncio.Future[tuple[int, socket.socket]]] = {
        r: loop.create_future() for r in range(job.rank + 1, job.size)
    }
    refused: list[str] = []

    def accept(conn: FramedConnection, hello: Hello) -> _Acceptor:
        try:
            peer = int(hello.node)
        except ValueError:
            raise HandshakeRefused(f"node id {hello.node!r} is not a rank") from None
        future = higher.get(peer)
        if future is None or future.done():
            raise HandshakeRefused(f"rank {peer} is not expected to connect to rank {job.rank}")
        receiver = _Acceptor(job, conn, peer, future, refused)
        return receiver

    async def done_future(r: int) -> tuple[int, socket.socket]:
        return await higher[r]

    server = await serve(
        (job.host, 0),
        cluster=job.cluster,
        node=str(job.rank),
        purposes=(PURPOSE,),
        accept=accept,
        on_refused=refused.append,
    )
    port = server.sockets[0].getsockname()[1]
    mine = f"{job.advertise or job.host}:{port}"
    table: list[str] = []
    if job.rendezvous is not None:
        table = await register(job.rendezvous, job.job, job.secret, job.rank, mine)
    else:
        tmp = job.directory / f".rank{job.rank}.tmp"
        tmp.write_text(mine + "\n")
        tmp.rename(_address_file(job, job.rank))

    async def dial(r: int) -> tuple[int, socket.socket]:
        address = table[r] if table else await _wait_for_address(job, r)
        hello = Hello(cluster=job.cluster, node=str(job.rank), purpose=PURPOSE)
        conn = await connect(address, hello, expect_node=str(r))
        connector = _Connector(job, conn, r)
        conn.attach(connector)
        connector.start()
        sock = await connector.result
        return r, sock

    try:
        results = await asyncio.gather(
            *(dial(r) for r in range(job.rank)), *(done_future(r) for r in higher)
        )
    finally:
        server.close()
    return dict(results)


def _read_ready(rank: int, sock: socket.socket, timeout: float) -> None:
    sock.settimeout(timeout)
    data = b""
    while len(data) < HEADER_SIZE:
        chunk = sock.recv(HEADER_SIZE - len(data))
        if not chunk:
            raise MPIError(f"rank {rank} closed the connection before it was ready")
        data += chunk
    (size,) = _LEN.unpack_from(data, 0)
    kind, _ctx, _tag = _META.unpack_from(data, _LEN.size)
    if kind != READY or size != _META.size:
        raise MPIError(f"rank {rank} did not send READY")
    sock.settimeout(None)


def connect_job(job: JobInfo) -> dict[int, socket.socket]:
    """Steps 1-4 of the module docstring; returns one authenticated socket per other rank."""
    if job.size == 1:
        return {}

    async def run() -> dict[int, socket.socket]:
        return await asyncio.wait_for(_connect_all(job), job.connect_timeout_s)

    try:
        socks = asyncio.run(run())
    except TimeoutError:
        raise MPIError(
            f"rank {job.rank}: not every rank connected within {job.connect_timeout_s} s"
        ) from None
    for rank, sock in socks.items():
        if rank < job.rank:  # we connected: the accepting side sends READY
            _read_ready(rank, sock, job.connect_timeout_s)
    return socks

"""A TCP rendezvous for jobs whose ranks do not share a directory (`mpirun --hostfile`).

The launcher serves it (`RendezvousServer`, one thread); it reaches the ranks as
``TEJIDO_MPI_RENDEZVOUS=HOST:PORT``. Each rank, once it listens, registers its own
address and gets back every rank's (`register`). Messages are msgspec JSON, one per line:

- rank -> launcher: `Register(rank, address, mac)`, ``mac`` = HMAC-SHA256 of
  ``register|job|rank|address`` under the job secret, so only the job's ranks register;
- launcher -> every rank, once all have registered: `Table(addresses, mac)`, ``mac`` over
  ``table|job|addresses``, so a rank trusts no table the launcher did not make;
- `Refused(reason)` to a bad registration (bad MAC, unknown or duplicate rank, garbage),
  whose connection is then closed while the server keeps waiting for the real ranks.

The table only says where to connect: ranks still authenticate each other there
(`tejido.mpi.setup`, mutual HMAC), so a forged address could only make the job fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import selectors
import socket
import threading

import msgspec

from tejido.mpi.api import MPIError

__all__ = ["RendezvousServer", "register"]

_MAX_LINE = 4096


class Register(msgspec.Struct, frozen=True, tag=True):
    rank: int
    address: str
    mac: str


class Table(msgspec.Struct, frozen=True, tag=True):
    addresses: list[str]
    mac: str


class Refused(msgspec.Struct, frozen=True, tag=True):
    reason: str


_encode = msgspec.json.Encoder().encode
_decode_register = msgspec.json.Decoder(Register).decode
_decode_reply = msgspec.json.Decoder(Table | Refused).decode


def _mac(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "|".join(parts).encode(), hashlib.sha256).hexdigest()


def _table_mac(secret: bytes, job: str, addresses: list[str]) -> str:
    return _mac(secret, "table", job, *addresses)


class RendezvousServer:
    """The launcher's side: collects `size` registrations, then answers them all."""

    def __init__(self, job: str, secret: bytes, size: int, bind: str, advertise: str) -> None:
        self.job = job
        self.secret = secret
        self.size = size
        self.listener = socket.create_server((bind, 0))
        self.listener.setblocking(False)
        self.address = f"{advertise}:{self.listener.getsockname()[1]}"
        self.refusals: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tejido-mpi-rendezvous")
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, None)
        pending: dict[socket.socket, bytearray] = {}
        registered: dict[int, tuple[str, socket.socket]] = {}
        try:
            while not self._stop.is_set() and len(registered) < self.size:
                for key, _mask in selector.select(0.1):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            conn, _ = self.listener.accept()
                            conn.setblocking(False)
                            pending[conn] = bytearray()
                            selector.register(conn, selectors.EVENT_READ, "conn")
                        continue
                    conn = key.fileobj  # type: ignore[assignment]
                    self._read(conn, pending, registered, selector)
            if len(registered) == self.size:
                addresses = [registered[r][0] for r in range(self.size)]
                reply = _encode(Table(addresses, _table_mac(self.secret, self.job, addresses)))
                for _address, conn in registered.values():
                    with contextlib.suppress(OSError):
                        conn.setblocking(True)
                        conn.sendall(reply + b"\n")
        finally:
            for conn in list(pending):
                conn.close()
            selector.close()
            self.listener.close()

    def _read(
        self,
        conn: socket.socket,
        pending: dict[socket.socket, bytearray],
        registered: dict[int, tuple[str, socket.socket]],
        selector: selectors.BaseSelector,
    ) -> None:
        try:
            chunk = conn.recv(_MAX_LINE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf = pending[conn]
        buf += chunk
        if b"\n" not in buf:
            if not chunk or len(buf) > _MAX_LINE:
                self._drop(conn, pending, selector, "no registration" if not chunk else "")
            return
        line = bytes(buf.split(b"\n", 1)[0])
        try:
            message = _decode_register(line)
        except msgspec.DecodeError:
            self._drop(conn, pending, selector, "not a registration")
            return
        want = _mac(self.secret, "register", self.job, str(message.rank), message.address)
        if not hmac.compare_digest(message.mac, want):
            self._drop(conn, pending, selector, "wrong job secret")
        elif not 0 <= message.rank < self.size or message.rank in registered:
            self._drop(conn, pending, selector, f"rank {message.rank} unexpected")
        else:
            selector.unregister(conn)
            del pending[conn]
            registered[message.rank] = (message.address, conn)

    def _drop(
        self,
        conn: socket.socket,
        pending: dict[socket.socket, bytearray],
        selector: selectors.BaseSelector,
        reason: str,
    ) -> None:
        if reason:
            self.refusals.append(reason)
            with contextlib.suppress(OSError):
                conn.send(_encode(Refused(reason)) + b"\n")
        selector.unregister(conn)
        del pending[conn]
        conn.close()


async def register(rendezvous: str, job: str, secret: bytes, rank: int, address: str) -> list[str]:
    """The rank's side: say where `rank` listens; return every rank's address, in order."""
    host, _, port = rendezvous.rpartition(":")
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
    except (OSError, ValueError) as exc:
        raise MPIError(f"cannot reach the job's rendezvous at {rendezvous}: {exc}") from None
    try:
        mac = _mac(secret, "register", job, str(rank), address)
        writer.write(_encode(Register(rank, address, mac)) + b"\n")
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
    if not line:
        raise MPIError(f"the rendezvous at {rendezvous} closed without an answer")
    try:
        reply = _decode_reply(line)
    except msgspec.DecodeError:
        raise MPIError(f"the rendezvous at {rendezvous} sent garbage") from None
    if isinstance(reply, Refused):
        raise MPIError(f"the rendezvous at {rendezvous} refused rank {rank}: {reply.reason}")
    if not hmac.compare_digest(reply.mac, _table_mac(secret, job, reply.addresses)):
        raise MPIError(f"the rendezvous at {rendezvous} does not hold this job's secret")
    addresses: list[str] = reply.addresses
    if len(addresses) <= rank or addresses[rank] != address:
        raise MPIError(f"the rendezvous at {rendezvous} sent a table without rank {rank}")
    return addresses

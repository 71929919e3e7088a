"""One member of the ``floor`` system: the hops of a replicated store with no protocol.

``python -m tejido.bench.kv_floor_server --member I --records FILE --listen HOST:PORT``
plus, on member 0 (the leader, fixed), ``--follower HOST:PORT`` twice (the followers'
peer addresses), and on members 1 and 2 ``--peer-listen HOST:PORT`` (where the leader
connects). It prints ``READY <client port>`` (followers: ``READY <client port> <peer
port>``) on stdout once it listens (the leader: once it has connected to both followers),
writes one status line to stderr when it stops (SIGTERM), and never elects anything: a
dead leader stays dead.

What a request costs here is what any fsynced, replicated store pays at least, in
Python, on one event loop (uvloop, `asyncio.Protocol` callbacks, TCP_NODELAY):

1. put at the leader: the record goes into the batch of this loop turn; at the end of the
   turn (one `call_soon`) the batch is sent to both followers, appended to the records
   file (one ``os.write`` on an ``O_APPEND`` descriptor) and covered by one
   ``os.fdatasync`` on the loop itself. Puts that arrive while it runs are read in the
   next turn and covered by the next one (group commit). A put is answered once the
   leader's fdatasync covering it is done and one follower has acknowledged it (commit =
   min(own synced index, highest follower acknowledgement)); then it is applied (a dict
   store) and the reply written.
2. follower: appends every record of one read to its file, one fdatasync, acknowledges
   the highest index (cumulative), applies to its own dict.
3. get at the leader: waits for a numbered heartbeat round to the followers that started
   after the get arrived (ReadIndex's shape, Raft thesis §6.4: gets that arrive while a
   round is out wait for the next, which starts when that one ends) and is answered from
   the leader's dict once one follower has answered the round.

Wire formats (little-endian `struct`s, each frame starts with the length of what
follows its length field):

- client -> member: `REQUEST` ``(length, op, request id, key length)``, then the key,
  then the value (puts); ops `OP_PUT`, `OP_GET`, `OP_STATUS`;
- member -> client: `REPLY` ``(length, status, request id)``, then the payload: `EMPTY`
  (put done, or the key is absent), `VALUE` (the value; status: a JSON object of the
  member's counters), `REFUSED` (a reason: a follower takes no puts or gets);
- leader -> follower: `RECORD` ``(length, kind, number, key length)``, then key and value:
  kind `APPEND` (number = the record's index, from 1) or `HEARTBEAT` (number = the round,
  no key or value). The records file holds exactly the append frames, back to back;
- follower -> leader: `ACK` ``(kind, number)``, 9 bytes, no length field.

The status (``OP_STATUS``, any member) counts ``records`` appended to the file,
``fdatasyncs`` made, ``log_bytes`` written and ``keys`` in the dict.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import socket
import struct
import sys
from collections import deque
from typing import Final, cast

__all__ = [
    "ACK",
    "APPEND",
    "EMPTY",
    "HEARTBEAT",
    "OP_GET",
    "OP_PUT",
    "OP_STATUS",
    "RECORD",
    "REFUSED",
    "REPLY",
    "REQUEST",
    "VALUE",
    "main",
]

OP_PUT: Final = 0
OP_GET: Final = 1
OP_STATUS: Final = 2
EMPTY: Final = 0
VALUE: Final = 1
REFUSED: Final = 2
APPEND: Final = 0
HEARTBEAT: Final = 1

REQUEST: Final = struct.Struct("<IBIB")
REPLY: Final = struct.Struct("<IBI")
RECORD: Final = struct.Struct("<IBQB")
ACK: Final = struct.Struct("<BQ")
#: The part of each frame its length field counts.
_REQUEST_REST: Final = REQUEST.size - 4
_REPLY_REST: Final = REPLY.size - 4
_RECORD_REST: Final = RECORD.size - 4
_CONNECT_S = 10.0


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Member:
    """What every member has: its number, its records file, its dict and its counters."""

    role = "member"

    def __init__(self, number: int, records_path: str) -> None:
        self.number = number
        self.fd = os.open(records_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.data: dict[bytes, bytes] = {}
        self.records = 0
        self.fdatasyncs = 0
        self.log_bytes = 0

    def append(self, batch: bytes | bytearray, count: int) -> None:
        """Append `count` records (`batch`) to the file and make them durable."""
        _write_all(self.fd, batch)
        os.fdatasync(self.fd)
        self.fdatasyncs += 1
        self.records += count
        self.log_bytes += len(batch)

    def status(self) -> dict[str, object]:
        return {
            "member": self.number,
            "role": self.role,
            "records": self.records,
            "fdatasyncs": self.fdatasyncs,
            "log_bytes": self.log_bytes,
            "keys": len(self.data),
        }

    def request(self, link: ClientLink, op: int, ident: int, key: bytes, value: bytes) -> None:
        if op == OP_STATUS:
            link.reply(VALUE, ident, json.dumps(self.status()).encode())
        elif op in (OP_PUT, OP_GET):
            link.reply(REFUSED, ident, b"not the leader: member 0 is")
        else:
            link.reply(REFUSED, ident, f"unknown op {op}".encode())

    def close(self) -> None:
        os.close(self.fd)


class ClientLink(asyncio.Protocol):
    """One client connection: request frames in, replies out (batched per commit)."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.transport: asyncio.Transport | None = None
        self.out = bytearray()
        self._rest = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        _nodelay(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        end = len(data)
        offset = 0
        request = self.member.request
        while end - offset >= REQUEST.size:
            length, op, ident, klen = REQUEST.unpack_from(data, offset)
            stop = offset + 4 + length
            if stop > end:
                break
            start = offset + REQUEST.size
            request(self, op, ident, data[start : start + klen], data[start + klen : stop])
            offset = stop
        self._rest = data[offset:]

    def reply(self, status: int, ident: int, payload: bytes = b"") -> None:
        if self.transport is not None:
            self.transport.write(REPLY.pack(_REPLY_REST + len(payload), status, ident) + payload)

    def send(self) -> None:
        """Write the replies queued in `out`."""
        out, self.out = self.out, bytearray()
        if self.transport is not None:
            self.transport.write(out)


class FollowerLink(asyncio.Protocol):
    """The leader's connection to one follower: records out, acknowledgements in."""

    def __init__(self, leader: Leader, slot: int) -> None:
        self.leader = leader
        self.slot = slot
        self.transport: asyncio.Transport | None = None
        self._rest = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        print(f"follower link {self.slot} lost: {exc}", file=sys.stderr, flush=True)  # noqa: T201

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        whole = len(data) - len(data) % ACK.size
        appended = heartbeat = 0
        for kind, number in ACK.iter_unpack(data[:whole]):
            if kind == APPEND:
                appended = max(appended, number)
            else:
                heartbeat = max(heartbeat, number)
        self._rest = data[whole:]
        if appended:
            self.leader.appended(self.slot, appended)
        if heartbeat:
            self.leader.heard(heartbeat)


class Leader(Member):
    """Member 0: batches, replicates, fsyncs and answers puts; confirms gets."""

    role = "leader"

    def __init__(self, number: int, records_path: str) -> None:
        super().__init__(number, records_path)
        self.loop = asyncio.get_running_loop()
        self.followers: list[FollowerLink] = []
        self.acked = [0, 0]
        self.last_index = 0
        self.synced = 0
        self.committed = 0
        self.round = 0
        #: (index, key, value, link, request id) of puts not yet committed, oldest first.
        self._pending: deque[tuple[int, bytes, bytes, ClientLink, int]] = deque()
        self._batch = bytearray()
        self._batched = 0
        self._flush_scheduled = False
        #: Gets waiting for a round to start / waiting for the round out now.
        self._waiting: list[tuple[ClientLink, int, bytes]] = []
        self._in_round: list[tuple[ClientLink, int, bytes]] = []

    def status(self) -> dict[str, object]:
        return {
            **super().status(),
            "committed": self.committed,
            "rounds": self.round,
            "followers": sum(f.transport is not None for f in self.followers),
        }

    def request(self, link: ClientLink, op: int, ident: int, key: bytes, value: bytes) -> None:
        if op == OP_PUT:
            self.last_index += 1
            index = self.last_index
            length = _RECORD_REST + len(key) + len(value)
            self._batch += RECORD.pack(length, APPEND, index, len(key))
            self._batch += key
            self._batch += value
            self._batched += 1
            self._pending.append((index, key, value, link, ident))
        elif op == OP_GET:
            self._waiting.append((link, ident, key))
        else:
            super().request(link, op, ident, key, value)  # status, or refused
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """End of a loop turn: start a read round if gets wait, then replicate and sync."""
        self._flush_scheduled = False
        if self._waiting and not self._in_round:
            self._start_round()
        if not self._batched:
            return
        batch, count = self._batch, self._batched
        self._batch, self._batched = bytearray(), 0
        for follower in self.followers:
            if follower.transport is not None:
                follower.transport.write(batch)
        self.append(batch, count)  # inline fdatasync: the loop waits for the disk
        self.synced = self.last_index
        self._commit()

    def _start_round(self) -> None:
        self.round += 1
        self._in_round, self._waiting = self._waiting, []
        frame = RECORD.pack(_RECORD_REST, HEARTBEAT, self.round, 0)
        for follower in self.followers:
            if follower.transport is not None:
                follower.transport.write(frame)

    def appended(self, slot: int, index: int) -> None:
        if index > self.acked[slot]:
            self.acked[slot] = index
            self._commit()

    def heard(self, number: int) -> None:
        """A follower answered round `number`: the gets of that round are confirmed."""
        if number != self.round or not self._in_round:
            return  # an older round, or the other follower answered first
        gets, self._in_round = self._in_round, []
        data = self.data
        links: list[ClientLink] = []
        for link, ident, key in gets:
            value = data.get(key)
            if not link.out:
                links.append(link)
            if value is None:
                link.out += REPLY.pack(_REPLY_REST, EMPTY, ident)
            else:
                link.out += REPLY.pack(_REPLY_REST + len(value), VALUE, ident)
                link.out += value
        for link in links:
            link.send()
        if self._waiting:
            self._start_round()

    def _commit(self) -> None:
        commit = min(self.synced, max(self.acked))
        if commit <= self.committed:
            return
        self.committed = commit
        pending, data = self._pending, self.data
        links: list[ClientLink] = []
        while pending and pending[0][0] <= commit:
            _, key, value, link, ident = pending.popleft()
            data[key] = value
            if not link.out:
                links.append(link)
            link.out += REPLY.pack(_REPLY_REST, EMPTY, ident)
        for link in links:
            link.send()


class Follower(Member):
    role = "follower"


class LeaderLink(asyncio.Protocol):
    """A follower's connection from the leader: records and heartbeats in, ACKs out."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.transport: asyncio.Transport | None = None
        self._rest = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        end = len(data)
        offset = 0
        frames: list[bytes] = []
        applied: list[tuple[bytes, bytes]] = []
        last = heartbeat = 0
        while end - offset >= RECORD.size:
            length, kind, number, klen = RECORD.unpack_from(data, offset)
            stop = offset + 4 + length
            if stop > end:
                break
            if kind == APPEND:
                start = offset + RECORD.size
                frames.append(data[offset:stop])
                applied.append((data[start : start + klen], data[start + klen : stop]))
                last = number
            else:
                heartbeat = number
            offset = stop
        self._rest = data[offset:]
        transport = self.transport
        if heartbeat and transport is not None:
            transport.write(ACK.pack(HEARTBEAT, heartbeat))  # before the disk: reads wait less
        if frames:
            self.follower.append(b"".join(frames), len(frames))
            if transport is not None:
                transport.write(ACK.pack(APPEND, last))
            self.follower.data.update(applied)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _connect_followers(leader: Leader, addresses: list[str]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _CONNECT_S
    for slot, address in enumerate(addresses):
        host, port = _address(address)
        while True:
            try:
                _, link = await loop.create_connection(
                    functools.partial(FollowerLink, leader, slot), host, port
                )
                break
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)  # the follower is still starting
        leader.followers.append(link)


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    member: Member
    ports: list[int] = []
    servers: list[asyncio.Server] = []
    if args.member == 0:
        if len(args.follower) != 2:
            raise SystemExit("member 0 (the leader) needs --follower twice")
        member = Leader(0, args.records)
        await _connect_followers(member, args.follower)
    else:
        if not args.peer_listen:
            raise SystemExit("a follower needs --peer-listen")
        follower = member = Follower(args.member, args.records)
        host, port = _address(args.peer_listen)
        peers = await loop.create_server(lambda: LeaderLink(follower), host, port)
        servers.append(peers)
    host, port = _address(args.listen)
    front = await loop.create_server(lambda: ClientLink(member), host, port)
    servers.insert(0, front)
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    sys.stdout.write(f"READY {' '.join(map(str, ports))}\n")
    sys.stdout.flush()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    for server in servers:
        server.close()
    print(f"status {json.dumps(member.status())}", file=sys.stderr, flush=True)  # noqa: T201
    member.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member", type=int, required=True, help="0 is the leader")
    parser.add_argument("--records", required=True, help="the records file (appended to)")
    parser.add_argument("--listen", required=True, help="the client front end's HOST:PORT")
    parser.add_argument("--peer-listen", help="a follower's address for the leader")
    parser.add_argument(
        "--follower", action="append", default=[], help="the leader: a follower's peer address"
    )
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

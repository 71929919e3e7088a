"""One PySyncObj member with a small TCP front end, for the replicated-store benchmark.

``python -m tejido.bench.kv_syncobj_server --self HOST:PORT --partner HOST:PORT ...
--journal FILE --listen HOST:PORT`` runs a `SyncObj` node (its own thread, PySyncObj's
``autoTick``) whose replicated state is a dict, and an asyncio server on ``--listen`` that
the load generators talk to. PySyncObj has no network API of its own for clients: a
program calls its ``@replicated`` methods in-process, so this front end is the smallest
one that lets separate processes do it.

Wire format (both ways): a 4-byte big-endian length, then a msgpack array.
Requests ``[id, op, key, value]`` with op 0 = put, 1 = get, 2 = status; replies
``[id, ok, payload]``: for put ``None``, for get the value or ``None``, for status
``[self address, leader address or None]``, and for a failure ``ok`` false and a reason.

Both put and get go through the replicated log (PySyncObj applies a ``@replicated``
method once it is committed and answers the caller then), so a get is linearizable; a
local read of the dict would be faster but possibly stale (PySyncObj offers no ReadIndex
or lease read). The journal file is on, as asked; PySyncObj 0.3.17 never fsyncs it (its
journal is an mmap it flushes only when the node is destroyed: ``pysyncobj/journal.py``,
whose ``flush`` nothing in ``syncobj.py`` calls), which the benchmark
records beside its numbers. Batching is off (``appendEntriesUseBatch=False``, as in the
anchors): with it on, PySyncObj sends new entries only every 0.1 s. A put or get that
PySyncObj refuses (no leader, queue full, request dropped) is answered with ``ok`` false
and the reason's name.

The member prints ``READY <port>`` on stdout once the front end listens, and stops on
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import sys
from typing import Any, cast

import msgspec
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated  # type: ignore[import-untyped]

__all__ = ["OP_GET", "OP_PUT", "OP_STATUS", "main"]

OP_PUT = 0
OP_GET = 1
OP_STATUS = 2
_LENGTH = struct.Struct(">I")
_FAILURES = {
    getattr(FAIL_REASON, name): name
    for name in dir(FAIL_REASON)
    if name.isupper() and isinstance(getattr(FAIL_REASON, name), int)
}


class KeyValue(SyncObj):  # type: ignore[misc]
    """A dict replicated by PySyncObj: puts and gets are log entries."""

    def __init__(self, me: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(me, partners, conf)
        self._data: dict[bytes, bytes] = {}

    @replicated  # type: ignore[untyped-decorator]
    def put(self, key: bytes, value: bytes) -> None:
        self._data[key] = value

    @replicated  # type: ignore[untyped-decorator]
    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)


class FrontEnd(asyncio.Protocol):
    """Reads request frames, hands each to PySyncObj, writes replies as they come back."""

    def __init__(self, node: KeyValue, me: str) -> None:
        self._node = node
        self._me = me
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._encoder = msgspec.msgpack.Encoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= 4:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if len(buffer) - offset - 4 < length:
                break
            frame = bytes(buffer[offset + 4 : offset + 4 + length])
            offset += 4 + length
            self._request(frame)
        del buffer[:offset]

    def _request(self, frame: bytes) -> None:
        try:
            ident, op, key, value = msgspec.msgpack.decode(frame)
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            self._reply(-1, False, f"malformed request: {exc}")
            return
        if op == OP_STATUS:
            self._reply(ident, True, [self._me, self._leader()])
            return

        def done(result: Any, error: int) -> None:  # runs on PySyncObj's thread
            self._loop.call_soon_threadsafe(self._answer, ident, result, error)

        if op == OP_PUT:
            self._node.put(key, value, callback=done)
        elif op == OP_GET:
            self._node.get(key, callback=done)
        else:
            self._reply(ident, False, f"unknown op {op!r}")

    def _answer(self, ident: int, result: Any, error: int) -> None:
        if error == FAIL_REASON.SUCCESS:
            self._reply(ident, True, result)
        else:
            self._reply(ident, False, _FAILURES.get(error, str(error)))

    def _reply(self, ident: int, ok: bool, payload: Any) -> None:
        if self._transport is None:
            return
        body = self._encoder.encode([ident, ok, payload])
        self._transport.write(_LENGTH.pack(len(body)) + body)

    def _leader(self) -> str | None:
        try:
            leader = self._node.getStatus()["leader"]
        except RuntimeError:  # its thread changed a dict while we read it: no answer now
            return None
        return None if leader is None else str(leader.address)


async def _serve(args: argparse.Namespace) -> None:
    # appendEntriesUseBatch=False: send each command at once (PySyncObj then wakes its
    # thread through a pipe) instead of every appendEntriesPeriod (0.1 s), which would put
    # ~200 ms under every request; the anchors were measured this way ("batching off").
    conf = SyncObjConf(
        journalFile=args.journal, dynamicMembershipChange=False, appendEntriesUseBatch=False
    )
    node = KeyValue(args.me, args.partner, conf)
    host, _, port = args.listen.rpartition(":")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FrontEnd(node, args.me), host, int(port))
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {bound}\n")
    sys.stdout.flush()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    server.close()
    node.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self", dest="me", required=True, help="this member's raft address")
    parser.add_argument("--partner", action="append", default=[], help="another member's")
    parser.add_argument("--journal", required=True, help="the journal file")
    parser.add_argument("--listen", required=True, help="the front end's HOST:PORT")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The small client protocol of a node: submit an `Operation`, await its `Outcome`.

Purpose ``client`` on the node's listening port. After the handshake the client sends
`ClientRequest(id, operation)` frames and the node answers each with `ClientReply(id,
outcome)`, in whatever order the protocol finishes them; many requests may be in flight on
one connection. A frame that is not a request is answered with `ClientError(reason)` naming
what was wrong, and the connection keeps serving. This is deliberately minimal: the RPC
layer (`tejido.rpc`) is the general way to call services; this protocol exists so a node
host and its tests need nothing above the runtime layer.

A request the node never answers (the node crashed, the protocol could not reach a quorum)
times out in `NodeClient.submit`: the caller does not know whether it took effect, which a
history records as ``info``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module

import msgspec

from tejido.core.operations import Operation, Outcome
from tejido.net.connection import ConnectionClosed, FramedConnection, connect
from tejido.net.handshake import Hello

__all__ = [
    "CLIENT",
    "ClientError",
    "ClientReply",
    "ClientRequest",
    "NodeClient",
    "decode_request",
    "encode_client_message",
]

CLIENT = "client"


class ClientRequest(msgspec.Struct, frozen=True, tag=True):
    id: int
    operation: Operation


class ClientReply(msgspec.Struct, frozen=True, tag=True):
    id: int
    outcome: Outcome


class ClientError(msgspec.Struct, frozen=True, tag=True):
    """The node could not read a request; ``reason`` says what was wrong with it."""

    reason: str


_encoder = msgspec.msgpack.Encoder()
encode_client_message = _encoder.encode
_request_decoder = msgspec.msgpack.Decoder(ClientRequest)
_answer_decoder = msgspec.msgpack.Decoder(ClientReply | ClientError)


def decode_request(payload: bytes) -> ClientRequest:
    """Raises `msgspec.DecodeError`/`ValidationError` naming the bad field."""
    return _request_decoder.decode(payload)


class NodeClient:
    """One connection to a node's client port; `submit` may be called concurrently."""

    def __init__(self, conn: FramedConnection) -> None:
        self.conn = conn
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[Outcome]] = {}
        self.errors: list[str] = []
        conn.attach(self)

    @classmethod
    async def connect(
        cls,
        address: str,
        *,
        cluster: str = "tejido",
        ssl: ssl_module.SSLContext | None = None,
        timeout: float = 5.0,
    ) -> NodeClient:
        hello = Hello(cluster=cluster, node="", purpose=CLIENT)
        return cls(await connect(address, hello, ssl=ssl, timeout=timeout))

    async def submit(self, operation: Operation, timeout: float = 5.0) -> Outcome:
        """Send one operation and wait for its outcome; `TimeoutError` if none comes in time."""
        self._next_id += 1
        ident = self._next_id
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        try:
            self.conn.send(encode_client_message(ClientRequest(ident, operation)))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(ident, None)

    def frame_received(self, payload: bytes) -> None:
        try:
            answer = _answer_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.errors.append(f"undecodable answer: {exc}")
            return
        if isinstance(answer, ClientError):
            self.errors.append(answer.reason)
            return
        future = self._waiting.get(answer.id)
        if future is not None and not future.done():
            future.set_result(answer.outcome)

    def connection_lost(self, exc: BaseException | None) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionClosed(f"the node closed the connection ({exc})"))

    async def close(self) -> None:
        self.conn.close()
        if self.conn.closed is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.conn.closed), 1.0)

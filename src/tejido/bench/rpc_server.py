"""The server side of the RPC benchmark: ``python -m tejido.bench.rpc_server SYSTEM``.

One process serves one system on loopback (port 0: the OS picks a free port), prints
``READY <port>`` on stdout once it accepts connections, and exits when its stdin closes
(the benchmark closes it; a benchmark that dies closes it too, so no server outlives it).
``--cpus 1`` pins the process first (see `tejido.bench.rpc_setup.Placement`).

The servers, each doing the least its system allows for one echo call:

- ``asyncio-echo``: a bare `asyncio.Protocol` on uvloop. It cuts the byte stream into
  length-prefixed frames and writes every complete frame it received back in one write:
  the Python floor any framed RPC server over asyncio stands on. ``asyncio-echo-await``
  is served by the same code in its own process (only its client differs).
- ``tejido``: `tejido.rpc` on uvloop serving `BenchEcho.echo` (bytes in, bytes out).
- ``grpcio``: a `grpc.aio` server with one generic unary method and no serializers (the
  request bytes are handed to the handler as they are, and its bytes go back as they are),
  so gRPC does the same work as with a generated stub whose message is one ``bytes`` field
  minus the protobuf encoding. grpc.aio runs on the standard asyncio loop (gRPC does not
  support uvloop).
- ``pyro5``: a Pyro5 daemon (its default threaded server) exposing one ``echo`` method,
  accepting the marshal serializer the client uses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, cast

from tejido.bench.rpc_setup import (
    ECHO,
    ECHO_AWAIT,
    GRPC_SERVICE,
    GRPCIO,
    PYRO5,
    PYRO_OBJECT,
    PYRO_SERIALIZER,
    SYSTEMS,
    TEJIDO,
    pin_to,
    ready_line,
)

__all__ = ["EchoServerProtocol", "main", "serve_system"]

#: The bare echo refuses frames above this size (a benchmark server, not a general one).
_MAX_ECHO_FRAME = 1 << 20
_unpack_header = struct.Struct(">I").unpack_from


def _announce(port: int) -> None:
    print(ready_line(port), flush=True)  # noqa: T201 (the readiness line is the protocol)


def _exit_when_stdin_closes() -> None:
    """Leave the process as soon as stdin reaches end of file (the benchmark is done)."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            sys.stdout.flush()
            os._exit(0)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


# ---------------------------------------------------------------------- asyncio-echo
class EchoServerProtocol(asyncio.Protocol):
    """Echo each complete length-prefixed frame; all frames of one read go back in one write.

    A frame header announcing more than 1 MiB closes the connection (the stream cannot be
    resynchronised after it); other connections are unaffected.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = len(buffer)
        pos = 0
        frames: list[bytes] = []
        while end - pos >= 4:
            (size,) = _unpack_header(buffer, pos)
            if size > _MAX_ECHO_FRAME:
                assert self._transport is not None
                self._transport.close()
                return
            stop = pos + 4 + size
            if stop > end:
                break
            frames.append(bytes(buffer[pos:stop]))
            pos = stop
        if pos:
            del buffer[:pos]
            assert self._transport is not None
            self._transport.write(b"".join(frames))


async def _serve_echo(host: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServerProtocol, host, 0)
    _announce(server.sockets[0].getsockname()[1])
    await asyncio.Future()  # serve until the process exits


# ---------------------------------------------------------------------- tejido
async def _serve_tejido(host: str) -> None:
    from tejido.bench.rpc_tejido import serve_bench_echo

    port = await serve_bench_echo(host)
    _announce(port)
    await asyncio.Future()


# ---------------------------------------------------------------------- grpcio
async def _serve_grpc(host: str) -> None:
    import grpc  # the bench extra

    async def echo(request: bytes, context: object) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        GRPC_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    _announce(port)
    await server.wait_for_termination()


# ---------------------------------------------------------------------- pyro5
def _serve_pyro(host: str) -> None:
    import Pyro5.api  # the bench extra

    Pyro5.api.config.SERIALIZER = PYRO_SERIALIZER

    @Pyro5.api.expose
    class Echo:
        def echo(self, data: bytes) -> bytes:
            return data

    daemon = Pyro5.api.Daemon(host=host, port=0)
    daemon.register(Echo, PYRO_OBJECT)
    _announce(int(daemon.sock.getsockname()[1]))
    daemon.requestLoop()


def serve_system(system: str, host: str = "127.0.0.1") -> None:
    """Serve `system` until the process exits."""
    runners: dict[str, Callable[[], None]] = {
        ECHO: lambda: _run_uvloop(_serve_echo(host)),
        ECHO_AWAIT: lambda: _run_uvloop(_serve_echo(host)),
        TEJIDO: lambda: _run_uvloop(_serve_tejido(host)),
        GRPCIO: lambda: asyncio.run(_serve_grpc(host)),
        PYRO5: lambda: _serve_pyro(host),
    }
    try:
        runner = runners[system]
    except KeyError:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}") from None
    runner()


def _run_uvloop(main: Coroutine[Any, Any, None]) -> None:
    import uvloop

    uvloop.run(main)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--cpus", default="", help="comma-separated CPUs to pin to (default: not pinned)"
    )
    args = parser.parse_args(argv)
    pin_to(frozenset(int(c) for c in args.cpus.split(",") if c))
    _exit_when_stdin_closes()
    serve_system(args.system, args.host)


if __name__ == "__main__":
    main()

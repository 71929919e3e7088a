"""tejido's side of the RPC benchmark: the `BenchEcho` service, its server and its client.

The service is one unary method, ``echo(data: bytes) -> bytes``, served by
`tejido.rpc.serve` and called through the typed stub `tejido.rpc.connect` returns, with the
defaults a user gets (no deadline, no retries, no interceptors, no TLS). The method returns
without suspending, so the server answers it without creating a task.

Kept apart from the anchors so the benchmark still runs them when `tejido.rpc` cannot
serve: `unavailable()` says why tejido is left out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tejido.rpc import service

__all__ = ["BenchEcho", "open_bench_echo", "serve_bench_echo", "unavailable"]


@service(name="tejido.bench.BenchEcho")
class BenchEcho:
    """The benchmark's service: hand the argument back."""

    async def echo(self, data: bytes) -> bytes:
        raise NotImplementedError  # the interface; `_Echo` implements it


class _Echo(BenchEcho):
    async def echo(self, data: bytes) -> bytes:
        return data


def unavailable() -> str | None:
    """Why tejido cannot be benchmarked, or None when it can."""
    import tejido.rpc

    missing = [name for name in ("serve", "connect", "close") if not hasattr(tejido.rpc, name)]
    if missing:
        return f"tejido.rpc has no {', '.join(missing)} yet"
    return None


async def serve_bench_echo(host: str) -> int:
    """Start serving `BenchEcho` on ``host`` (port 0); return the port."""
    from tejido.rpc import serve

    server = await serve(f"{host}:0", {BenchEcho: _Echo()})
    return server.port


async def open_bench_echo(
    host: str, port: int
) -> tuple[Callable[[bytes], Awaitable[bytes]], Callable[[], Awaitable[None]]]:
    """Connect; return the stub's echo method and a function that closes the client."""
    from tejido.rpc import close, connect

    stub = await connect(BenchEcho, f"{host}:{port}")

    async def close_stub() -> None:
        await close(stub)

    return stub.echo, close_stub

"""tejido's side of the RPC benchmark: the `BenchEcho` service, its server and its client.

Kept apart from the anchors so the benchmark runs (with the anchors only) while
`tejido.rpc` lacks a server and a client: `unavailable()` says why tejido is left out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = ["open_bench_echo", "serve_bench_echo", "unavailable"]


def unavailable() -> str | None:
    """Why tejido cannot be benchmarked yet, or None when it can."""
    import tejido.rpc

    missing = [name for name in ("serve", "connect") if not hasattr(tejido.rpc, name)]
    if missing:
        return f"tejido.rpc has no {' or '.join(missing)} yet"
    return None


async def serve_bench_echo(host: str) -> int:
    """Start serving `BenchEcho` on ``host`` (port 0); return the port."""
    raise NotImplementedError(unavailable() or "tejido adapter not written")


async def open_bench_echo(
    host: str, port: int
) -> tuple[Callable[[bytes], Awaitable[bytes]], Callable[[], Awaitable[None]]]:
    """Connect; return the echo call and a function that closes the connection."""
    raise NotImplementedError(unavailable() or "tejido adapter not written")

"""Loopback ports reserved for a test cluster's lifetime, so a stopped member can restart.

A port picked by binding port 0 and closing the socket again is free only until someone
else binds it. A member that is stopped and started again on its configured port loses
that race when, in between, another process (a test running in parallel, a client's
outgoing connection) takes the port: the restart fails with ``EADDRINUSE``. Two such
picks in a row may also return the same port (the kernel draws each one afresh).

`PortReservation` closes both gaps by keeping a *holder* socket bound to every port it
hands out, for as long as the reservation lives. Rules (Linux's bind rules, see
socket(7) ``SO_REUSEADDR``):

1. A holder is bound with ``SO_REUSEADDR`` and never listens. A server socket that also
   sets ``SO_REUSEADDR`` (asyncio's and uvloop's ``create_server`` do by default on
   POSIX) may bind and listen on the same address; any socket without it gets
   ``EADDRINUSE``, and neither port-0 binds nor outgoing connections are given the port.
2. So only a member (in this process or a child) can take the port, every time it
   starts, until `close` releases the holders.
3. The ports are distinct: a port with a holder is never handed out again.
"""

from __future__ import annotations

import socket

__all__ = ["PortReservation"]


class PortReservation:
    """Holds loopback ports (rule 1) until `close`; a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._holders: list[socket.socket] = []

    def take(self) -> int:
        """A fresh port, held from now until `close` (rules 1-3)."""
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind((self.host, 0))
        except OSError:
            holder.close()
            raise
        self._holders.append(holder)
        port: int = holder.getsockname()[1]
        return port

    def address(self) -> str:
        """``HOST:PORT`` with a freshly reserved port."""
        return f"{self.host}:{self.take()}"

    @property
    def ports(self) -> list[int]:
        return [int(h.getsockname()[1]) for h in self._holders]

    def close(self) -> None:
        holders, self._holders = self._holders, []
        for holder in holders:
            holder.close()

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

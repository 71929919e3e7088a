"""The real runtime: framing, handshake, connections, TLS, the node mesh and the node host.

Unlike the pure packages, this layer does I/O: asyncio (uvloop when installed), TCP and
TLS sockets, files with fsync. Protocols run here unchanged from the simulator.
"""

from tejido.net.connection import (
    ConnectionClosed,
    FramedConnection,
    FrameReceiver,
    connect,
    serve,
)
from tejido.net.frames import DEFAULT_MAX_FRAME, FrameDecoder, FrameError, FrameTooLarge
from tejido.net.handshake import WIRE_VERSION, HandshakeRefused, Hello, Refuse, Welcome

__all__ = [
    "DEFAULT_MAX_FRAME",
    "WIRE_VERSION",
    "ConnectionClosed",
    "FrameDecoder",
    "FrameError",
    "FrameReceiver",
    "FrameTooLarge",
    "FramedConnection",
    "HandshakeRefused",
    "Hello",
    "Refuse",
    "Welcome",
    "connect",
    "serve",
]

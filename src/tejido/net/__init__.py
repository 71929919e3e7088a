"""The real runtime: framing, handshake, connections, TLS, the node mesh and the node host.

Unlike the pure packages, this layer does I/O: asyncio (uvloop when installed), TCP and
TLS sockets, files with fsync. Protocols run here unchanged from the simulator. See
docs/net.md. Modules: frames, handshake, connection (shared with tejido.rpc); tls, certs;
mesh (peer links); storage (the storage contract on disk); client and host (the node).
"""

from tejido.net.client import NodeClient
from tejido.net.connection import (
    ConnectionClosed,
    FramedConnection,
    FrameReceiver,
    connect,
    serve,
)
from tejido.net.frames import DEFAULT_MAX_FRAME, FrameDecoder, FrameError, FrameTooLarge
from tejido.net.handshake import WIRE_VERSION, HandshakeRefused, Hello, Refuse, Welcome
from tejido.net.host import NodeHost, message_types, use_uvloop
from tejido.net.mesh import Backoff, Mesh, MessageCodec
from tejido.net.storage import CorruptStorage, DiskStorage, StorageLocked
from tejido.net.tls import TLSConfig

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
    "Backoff",
    "CorruptStorage",
    "DiskStorage",
    "Mesh",
    "MessageCodec",
    "NodeClient",
    "NodeHost",
    "StorageLocked",
    "TLSConfig",
    "message_types",
    "use_uvloop",
]

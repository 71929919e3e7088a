"""The real runtime: framing, handshake, connections, TLS, the node mesh and the node host.

Unlike the pure packages, this layer does I/O: asyncio (uvloop when installed), TCP and
TLS sockets, files with fsync. Protocols run here unchanged from the simulator. See
docs/net.md. Modules: frames, handshake, connection (shared with tejido.rpc); tls, certs;
mesh (peer links); storage (the storage contract on disk); client and host (the node).

The names below load on first use (module ``__getattr__``, PEP 562), so that importing
one submodule does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "Backoff": "tejido.net.mesh",
    "ConnectionClosed": "tejido.net.connection",
    "CorruptStorage": "tejido.net.storage",
    "DEFAULT_MAX_FRAME": "tejido.net.frames",
    "DiskStorage": "tejido.net.storage",
    "FrameDecoder": "tejido.net.frames",
    "FrameError": "tejido.net.frames",
    "FrameReceiver": "tejido.net.connection",
    "FrameTooLarge": "tejido.net.frames",
    "FramedConnection": "tejido.net.connection",
    "HandshakeRefused": "tejido.net.handshake",
    "Hello": "tejido.net.handshake",
    "Mesh": "tejido.net.mesh",
    "MessageCodec": "tejido.net.mesh",
    "NodeClient": "tejido.net.client",
    "NodeHost": "tejido.net.host",
    "Refuse": "tejido.net.handshake",
    "StorageLocked": "tejido.net.storage",
    "TLSConfig": "tejido.net.tls",
    "WIRE_VERSION": "tejido.net.handshake",
    "Welcome": "tejido.net.handshake",
    "connect": "tejido.net.connection",
    "message_types": "tejido.net.host",
    "serve": "tejido.net.connection",
    "use_uvloop": "tejido.net.host",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tejido.net' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

"""Remote objects, RMI style: exported objects, proxies, a naming registry, lease-based GC.

``node = await start()`` serves this node's objects; ``ref = node.export(obj, Iface)``
publishes one; ``await node.bind("name", ref)`` names it in a registry and
``await other.lookup("name", Iface)`` returns a proxy typed as ``Iface`` whose methods call
the object. Interfaces decorated with `remote` travel by reference (a client can pass its
own listener and be called back); everything else travels by value. Proxies hold leases
that they renew; an object whose leases all expire is released (distributed GC).
`tejido.remote.blocking` does the same without an event loop. See docs/remote.md.
"""

from tejido.remote.dgc import ExportEvent, NoSuchObject
from tejido.remote.interfaces import RemoteRef, is_remote, remote
from tejido.remote.node import DEFAULT_LEASE_S, RemoteNode, start
from tejido.remote.proxy import ref_of, release
from tejido.remote.registry import AlreadyBound, NotBound, Registry

__all__ = [
    "remote",
    "is_remote",
    "start",
    "RemoteNode",
    "RemoteRef",
    "DEFAULT_LEASE_S",
    "ref_of",
    "release",
    "ExportEvent",
    "Registry",
    "NoSuchObject",
    "NotBound",
    "AlreadyBound",
]

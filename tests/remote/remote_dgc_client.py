"""A client process for the distributed-GC test: looks up the publisher, asks it for a fresh
counter (a remote object kept alive only by this process's lease), prints the counter's
object id and this node's holder id as one JSON line, then holds the proxy until killed.

Usage: python remote_dgc_client.py REGISTRY_ADDRESS LEASE_S
"""

from __future__ import annotations

import asyncio
import json
import sys

from remote_fixtures import Publisher

import tejido.remote as remote
from tejido.rpc import run


async def main(registry: str, lease_s: float) -> None:
    node = await remote.start(lease_s=lease_s, registry=registry)
    publisher = await node.lookup("publisher", Publisher)
    counter = await publisher.make_counter()
    await counter.add(1)
    ref = remote.ref_of(counter)
    print(json.dumps({"object_id": ref.object_id, "holder": node.holder}), flush=True)
    await asyncio.Event().wait()  # hold the proxy (and renew its lease) until killed


if __name__ == "__main__":
    run(main(sys.argv[1], float(sys.argv[2])))

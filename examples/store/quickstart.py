"""The store from Python: a three-member cluster in this process, and `tejido.kv.Client`.

Run it: ``python examples/store/quickstart.py``. Against a cluster started with
``tejido up``, make the client with the endpoints from ``.tejido/cluster.json`` instead.
"""

# ruff: noqa: T201  (a demo program: printing is its output)
from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

from tejido import kv
from tejido.core.ids import NodeId
from tejido.store.config import MemberAddress, StoreConfig
from tejido.store.node import StoreNode


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def main(root: Path) -> None:
    members = {
        NodeId(i): MemberAddress(f"127.0.0.1:{_port()}", f"127.0.0.1:{_port()}") for i in (1, 2, 3)
    }
    nodes = [StoreNode(StoreConfig(NodeId(i), members, root / f"n{i}")) for i in (1, 2, 3)]
    for node in nodes:
        await node.start()
    endpoints = [address.client for address in members.values()]
    try:
        async with kv.Client(endpoints) as client:
            put = await client.put("config/colour", "blue")
            print("put config/colour at revision", put.header.revision)
            got = await client.get("config/colour")
            assert got is not None
            print("get config/colour =", got.value.decode(), "version", got.version)

            # Compare-and-set: change the colour only if it is still blue.
            swap = kv.TxnRequest(
                compare=[kv.Compare(key=b"config/colour", target="VALUE", value=b"blue")],
                success=[kv.PutRequest(key=b"config/colour", value=b"green")],
            )
            print("cas blue->green succeeded:", (await client.txn(swap)).result.succeeded)
            print("cas again succeeded:", (await client.txn(swap)).result.succeeded)

            # A lease: the key lives while the lease is kept alive.
            lease = await client.lease_grant(10)
            await client.put("workers/a", "alive", lease=lease.id)
            await client.lease_revoke(lease.id)
            print("after revoke, workers/a is", await client.get("workers/a"))

            # Watch every revision of config/ from the first put on.
            changes: list[str] = []
            async for response in client.watch("config/", prefix=True, start_revision=2):
                changes.extend(f"{e.type} {e.kv.value.decode()}" for e in response.events)
                if len(changes) == 2:
                    break
            print("history of config/:", ", ".join(changes))
    finally:
        for node in nodes:
            await node.stop()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(Path(directory)))

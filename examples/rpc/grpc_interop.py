"""A tejido service that any gRPC client can call, and tejido clients too.

Run it with ``python -m examples.rpc.grpc_interop --port 50051`` (port 0 picks a free one;
the first line printed is ``listening on PORT``, the gRPC port, the second ``tejido rpc on
PORT``: one server serves the same implementation over both), write its .proto with
``tejido rpc proto examples.rpc.grpc_interop:Shop -o shop.proto`` and generate a client
in any language from that. tests/rpc_grpc/test_grpc_interop.py does exactly this with
grpcio-tools and a plain grpcio client; docs/rpc-grpc.md quotes this file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import enum
import signal
import sys
from collections.abc import AsyncIterator

import tejido.rpc as rpc
from tejido.rpc import ServiceError, method, service


class Category(enum.Enum):  # -> proto enum CATEGORY_UNSPECIFIED = 0, CATEGORY_BOOK = 1, ...
    BOOK = 1
    GAME = 2
    TOOL = 3


@dataclasses.dataclass(frozen=True)
class Item:  # -> message Item { string sku = 1; ... }
    sku: str
    title: str
    price_cents: int
    category: Category = Category.BOOK  # a default: `optional` in the .proto
    tags: list[str] = dataclasses.field(default_factory=list)


class NotFound(ServiceError):
    grpc_status = "NOT_FOUND"  # plain gRPC clients see StatusCode.NOT_FOUND


class SoldOut(ServiceError):  # no grpc_status: FAILED_PRECONDITION
    pass


@service(name="shop.v1.Shop")  # the proto package is shop.v1, the service Shop
class Shop:
    errors = (NotFound,)

    async def add_item(self, item: Item) -> int: ...  # returns how many items there are

    @method(idempotent=True)
    async def get_item(self, sku: str) -> Item: ...

    # Server streaming: every item at most that price, cheapest first.
    async def list_items(self, max_price_cents: int | None = None) -> AsyncIterator[Item]: ...

    # Client streaming: the total price of every SKU sent.
    async def total_price(self, skus: AsyncIterator[str]) -> int: ...

    @method(raises=(SoldOut,))
    async def reserve(self, sku: str) -> None: ...

    # Waits until an item with that SKU is added (a call gives up at its deadline).
    async def wait_for_item(self, sku: str) -> Item: ...


class ShopImpl(Shop):
    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.reserved: set[str] = set()
        self.added = asyncio.Condition()

    async def add_item(self, item: Item) -> int:
        async with self.added:
            self.items[item.sku] = item
            self.added.notify_all()
        return len(self.items)

    async def get_item(self, sku: str) -> Item:
        try:
            return self.items[sku]
        except KeyError:
            raise NotFound(f"no item {sku!r}") from None

    async def list_items(self, max_price_cents: int | None = None) -> AsyncIterator[Item]:
        for item in sorted(self.items.values(), key=lambda item: item.price_cents):
            if max_price_cents is None or item.price_cents <= max_price_cents:
                yield item

    async def total_price(self, skus: AsyncIterator[str]) -> int:
        total = 0
        async for sku in skus:
            total += (await self.get_item(sku)).price_cents
        return total

    async def reserve(self, sku: str) -> None:
        await self.get_item(sku)
        if sku in self.reserved:
            raise SoldOut(f"{sku!r} is already reserved")
        self.reserved.add(sku)

    async def wait_for_item(self, sku: str) -> Item:
        async with self.added:
            await self.added.wait_for(lambda: sku in self.items)
        return self.items[sku]


async def serve(host: str, port: int, rpc_port: int = 0) -> None:
    # One server, one ShopImpl: tejido RPC on rpc_port and gRPC on port.
    server = await rpc.serve(f"{host}:{rpc_port}", {Shop: ShopImpl()}, grpc=f"{host}:{port}")
    sys.stdout.write(f"listening on {server.grpc_port}\n")  # the tests read the ports
    sys.stdout.write(f"tejido rpc on {server.port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.close(grpc_grace_s=1.0)  # health turns NOT_SERVING; gRPC calls get 1 s


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the example Shop over gRPC.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="gRPC; 0 picks a free port")
    parser.add_argument("--rpc-port", type=int, default=0, help="tejido RPC; 0 picks one")
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(options.host, options.port, options.rpc_port))


if __name__ == "__main__":
    main()

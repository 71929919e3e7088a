"""The store's client: `tejido.kv.Client` (asyncio) and its blocking twin.

    async with tejido.kv.Client(["127.0.0.1:2379", "127.0.0.1:2479"]) as kv:
        await kv.put("greeting", "hello")
        print((await kv.get("greeting")).value)

Errors: `NotApplied` (certainly had no effect; `StoreError` and `NotLeader` are kinds of
it) and `OutcomeUnknown` (may or may not have taken effect). See `tejido.store.client` for
the routing, retry and watch rules.
"""

from tejido.mvcc.api import Compare, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest
from tejido.store.client import BlockingClient, Client, prefix_end
from tejido.store.errors import NotApplied, NotLeader, OutcomeUnknown, StoreError, WatchCancelled

__all__ = [
    "BlockingClient",
    "Client",
    "Compare",
    "DeleteRangeRequest",
    "NotApplied",
    "NotLeader",
    "OutcomeUnknown",
    "PutRequest",
    "RangeRequest",
    "StoreError",
    "TxnRequest",
    "WatchCancelled",
    "prefix_end",
]

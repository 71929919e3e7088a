"""Drives a pure recipe (`tejido.mvcc.recipes`) with the asyncio store client.

Rules:

1. `Send`: the request goes through the client (its retry rules apply: writes through an
   exactly-once session are retried after an unknown outcome; `tejido.store.client`).
   A `StoreError` becomes the machine's input as the value it is; any other failure
   (`NotApplied`, `OutcomeUnknown`) ends the recipe with that exception.
2. `Wait`: a watch from ``start_revision`` on the range; the first response carrying an
   event wakes the machine (``on_change``); the watch is closed before the next action.
3. `Done` returns its value; `Failed` raises its error.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Protocol, TypeVar, cast

from tejido.kv import Client
from tejido.mvcc import api
from tejido.mvcc.recipes import Action, Done, Failed, Send, Wait
from tejido.store.errors import StoreError
from tejido.store.service import WatchResponse

__all__ = ["Recipe", "drive", "execute"]

T = TypeVar("T")


class Recipe(Protocol[T]):
    def start(self) -> Action[T]: ...

    def on_result(self, result: api.Result) -> Action[T]: ...

    def on_change(self) -> Action[T]: ...


async def execute(client: Client, request: api.RequestOp) -> api.Result:
    """Send one request; a refusal by the machine comes back as an `api.StoreError`."""
    try:
        if isinstance(request, api.RangeRequest):
            reply = await client.range(
                request.key,
                request.range_end,
                limit=request.limit,
                revision=request.revision,
                keys_only=request.keys_only,
                count_only=request.count_only,
            )
            return reply.result
        if isinstance(request, api.TxnRequest):
            return (await client.txn(request)).result
        if isinstance(request, api.DeleteRangeRequest) and not request.prev_kv:
            return (await client.delete(request.key, request.range_end)).result
        if isinstance(request, api.PutRequest) and not (
            request.ignore_lease or request.ignore_value or request.prev_kv
        ):
            return (await client.put(request.key, request.value, lease=request.lease)).result
        txn = (await client.txn(api.TxnRequest(success=[request]))).result
        return txn.responses[0]
    except StoreError as exc:
        code = cast(api.ErrorCode, exc.code)
        return api.StoreError(code=code, message=str(exc))


async def _wait(client: Client, wait: Wait) -> None:
    stream = cast(
        AsyncGenerator[WatchResponse, None],
        client.watch(wait.key, wait.range_end, start_revision=wait.start_revision),
    )
    async with contextlib.aclosing(stream):
        async for response in stream:
            if response.events:
                return


async def drive(client: Client, recipe: Recipe[T]) -> T:
    """Run `recipe` to its end (module rules)."""
    action = recipe.start()
    while True:
        if isinstance(action, Done):
            return action.value
        if isinstance(action, Failed):
            raise action.error
        if isinstance(action, Send):
            action = recipe.on_result(await execute(client, action.request))
        else:
            await _wait(client, action)
            action = recipe.on_change()

"""The naming registry: names bound to remote references, served over RPC like any service.

Any node can host it (every `RemoteNode` serves one); other nodes point at it with
``start(..., registry="HOST:PORT")``. Rules:

1. ``bind(name, ref)`` fails with `AlreadyBound` if the name is taken; ``rebind`` replaces;
   ``unbind`` and ``lookup`` of a name that is not bound fail with `NotBound`. ``list()``
   returns the bound names, sorted.
2. A bound object stays alive: if it was exported by the registry's own node it is held
   there (as if pinned) until unbound; if it lives on another node, the registry's node
   holds a lease on it like any client and renews it until unbound. Binding a reference
   to an object that no longer exists fails with `NoSuchObject`.
3. Names are 1 to 200 characters, without control characters; anything else gets
   `BadArguments` naming the problem.
"""

from __future__ import annotations

import builtins
from typing import Protocol

from tejido.remote.interfaces import RemoteRef
from tejido.rpc import BadArguments, ServiceError, method, service

__all__ = ["AlreadyBound", "NotBound", "Registry", "RegistryImpl"]

MAX_NAME_LENGTH = 200


class NotBound(ServiceError):
    """No object is bound under that name."""


class AlreadyBound(ServiceError):
    """The name is already bound (use ``rebind`` to replace it)."""


@service(name="tejido.remote.Registry")
class Registry:
    """Names -> remote references (rules in the module docstring)."""

    errors = (NotBound, AlreadyBound)

    async def bind(self, name: str, ref: RemoteRef) -> None:
        raise NotImplementedError

    async def rebind(self, name: str, ref: RemoteRef) -> None:
        raise NotImplementedError

    @method(idempotent=True)
    async def lookup(self, name: str) -> RemoteRef:
        raise NotImplementedError

    @method(idempotent=True)
    async def list(self) -> builtins.list[str]:
        raise NotImplementedError

    async def unbind(self, name: str) -> None:
        raise NotImplementedError


class Holder(Protocol):
    """What the registry needs from its node: keeping bound objects alive (rule 2)."""

    async def hold(self, ref: RemoteRef) -> None:
        raise NotImplementedError

    def let_go(self, ref: RemoteRef) -> None: ...


def check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME_LENGTH:
        raise BadArguments(
            f"a registry name must be 1 to {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise BadArguments(f"a registry name may not contain control characters: {name!r}")


class RegistryImpl(Registry):
    """The registry a node serves."""

    def __init__(self, holder: Holder) -> None:
        self._holder = holder
        self._names: dict[str, RemoteRef] = {}

    async def bind(self, name: str, ref: RemoteRef) -> None:
        check_name(name)
        if name in self._names:
            raise AlreadyBound(f"{name!r} is already bound to {self._names[name]}")
        await self._holder.hold(ref)
        if name in self._names:  # bound by someone else while we waited for the lease
            self._holder.let_go(ref)
            raise AlreadyBound(f"{name!r} is already bound to {self._names[name]}")
        self._names[name] = ref

    async def rebind(self, name: str, ref: RemoteRef) -> None:
        check_name(name)
        await self._holder.hold(ref)
        old = self._names.get(name)
        self._names[name] = ref
        if old is not None:
            self._holder.let_go(old)

    async def lookup(self, name: str) -> RemoteRef:
        ref = self._names.get(name)
        if ref is None:
            raise NotBound(f"no object is bound to {name!r}{self._known()}")
        return ref

    async def list(self) -> builtins.list[str]:
        return sorted(self._names)

    async def unbind(self, name: str) -> None:
        ref = self._names.pop(name, None)
        if ref is None:
            raise NotBound(f"no object is bound to {name!r}{self._known()}")
        self._holder.let_go(ref)

    def _known(self) -> str:
        if not self._names:
            return " (the registry is empty)"
        names = sorted(self._names)
        shown = ", ".join(repr(name) for name in names[:10])
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        return f" (bound: {shown}{more})"

    def clear(self) -> None:
        for ref in self._names.values():
            self._holder.let_go(ref)
        self._names.clear()

"""Where a server sends a call: registered implementations and each connection's slots.

A `Registry` maps (service name, object id) to a `Bound` implementation, whose `Handler`s
are its methods ready to dispatch. A `Routes` table belongs to one connection and maps the
method slots its client bound (`tejido.rpc.wire`, rule 1) to `Route`s. Rules:

1. A route remembers the handler it resolved to together with the registry's
   ``generation``; every `Registry.add` / `Registry.remove` bumps the generation, so a
   route re-resolves on its next use after any change and a removed implementation is
   never called through a stale slot (its calls get ``unknown``).
2. A client binds slots 1 to `MAX_SLOTS`; binding slot 0 binds nothing, and a slot out of
   that range is refused (the per-connection table stays bounded). Binding a bound slot
   again rebinds it.
3. Arguments are decoded straight into the tuple the implementation is called with when
   the method has no parameter defaults (a typed ``tuple[...]``: same validation as the
   args Struct, one allocation less); with defaults, through the args Struct, which fills
   them in.
4. A route caches the `CallContext` of a call without metadata and deadline (every field
   is then the same for each call of that route on that connection). The dispatcher
   reuses it for a call it completes inline and drops it when a call keeps it (runs on in
   a task) or touched ``extra``, so no two calls in progress share one.
5. With that context a route keeps a `contextvars.Context` in which `current_call()`
   returns it (``base``); the server's fast path runs each call in a copy of it, so a
   call costs one O(1) context copy instead of setting and resetting the variable, and
   what an implementation sets in its context never reaches the next call. Both are
   dropped together (`Route.forget`).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.rpc.context import CallContext, Peer, _serving
from tejido.rpc.service import MethodSpec, ServiceSpec
from tejido.rpc.wire import MAX_SLOTS, Target

__all__ = ["Bound", "Handler", "Registry", "Route", "Routes"]

_EMPTY_METADATA: dict[str, str] = {}


class Handler:
    """One method of one registered implementation, ready to dispatch."""

    __slots__ = (
        "declared",
        "decode_args",
        "fn",
        "item_decoder",
        "kind",
        "spec",
        "struct_args",
        "where",
    )

    def __init__(self, service: ServiceSpec, spec: MethodSpec, fn: Callable[..., Any]) -> None:
        self.spec = spec
        self.fn = fn
        self.kind = spec.kind
        self.where = f"{service.name}.{spec.name}"
        #: True when arguments decode to the args Struct (defaults to fill in, rule 3).
        self.struct_args = not all(param.required for param in spec.params)
        args_type: Any = spec.args_type
        if not self.struct_args:
            args_type = tuple[tuple(param.annotation for param in spec.params)]  # type: ignore[misc]
            if not spec.params:
                args_type = tuple[()]
        self.decode_args: Callable[[msgspec.Raw], Any] = msgspec.msgpack.Decoder(args_type).decode
        self.declared = service.errors
        self.item_decoder: msgspec.msgpack.Decoder[Any] | None = (
            msgspec.msgpack.Decoder(spec.stream_item) if spec.stream_param is not None else None
        )

    def args(self, raw: msgspec.Raw) -> tuple[Any, ...]:
        """The call's arguments, validated (raises `msgspec.ValidationError`)."""
        values = self.decode_args(raw)
        if self.struct_args:
            return msgspec.structs.astuple(values)
        return values  # type: ignore[no-any-return]

    def bad_arguments(self, exc: msgspec.MsgspecError) -> str:
        text = str(exc)
        for index, param in enumerate(self.spec.params):
            text = text.replace(f"`$[{index}]`", f"parameter {param.name!r}")
        return f"{self.where}: bad arguments: {text}"


class Bound:
    """An implementation registered under (service name, object id)."""

    __slots__ = ("handlers", "impl", "spec")

    def __init__(self, spec: ServiceSpec, impl: object) -> None:
        self.spec = spec
        self.impl = impl
        self.handlers: dict[str, Handler] = {}
        for name, method_spec in spec.methods.items():
            fn = getattr(impl, method_spec.attr, None)
            if fn is None or not callable(fn):
                raise LocalProtocolError(
                    f"{type(impl).__name__} does not implement {spec.name}.{method_spec.attr}"
                )
            declared_fn = getattr(spec.interface, method_spec.attr)
            if getattr(type(impl), method_spec.attr, None) is declared_fn:
                raise LocalProtocolError(
                    f"{type(impl).__name__} does not override {spec.name}.{method_spec.attr} "
                    "(it still has the interface's declaration)"
                )
            if not (
                inspect.iscoroutinefunction(fn)
                or inspect.isasyncgenfunction(fn)
                or method_spec.kind in ("server_stream", "bidi_stream")
            ):
                raise LocalProtocolError(
                    f"{type(impl).__name__}.{method_spec.attr} must be an async method"
                )
            self.handlers[name] = Handler(spec, method_spec, fn)


class Registry:
    """Implementations by (service name, object id); `generation` counts changes (rule 1)."""

    __slots__ = ("entries", "generation")

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Bound] = {}
        self.generation = 0

    def add(self, key: tuple[str, str], bound: Bound) -> None:
        self.entries[key] = bound
        self.generation += 1

    def remove(self, key: tuple[str, str]) -> None:
        if self.entries.pop(key, None) is not None:
            self.generation += 1

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.entries

    def resolve(self, service: str, object_id: str, method: str) -> Handler | str:
        """The handler for a call, or why there is none (the ``unknown`` failure's text)."""
        bound = self.entries.get((service, object_id))
        if bound is None:
            return self.unknown(service, object_id)
        handler = bound.handlers.get(method)
        if handler is None:
            return (
                f"service {service!r} has no method {method!r} "
                f"(it has: {', '.join(sorted(bound.handlers))})"
            )
        return handler

    def unknown(self, service: str, object_id: str) -> str:
        if object_id:
            if any(name == service for name, _ in self.entries):
                return f"no object {object_id!r} of service {service!r}"
            return f"unknown service {service!r} (object {object_id!r})"
        services = sorted(name for name, oid in self.entries if not oid)
        return f"unknown service {service!r} (this server serves: {', '.join(services)})"


class Route:
    """A call target as one connection knows it, with what it resolved to (rules 1, 4)."""

    __slots__ = (
        "base",
        "ctx",
        "generation",
        "handler",
        "inline",
        "method",
        "object_id",
        "service",
    )

    def __init__(self, service: str, method: str, object_id: str) -> None:
        self.service = service
        self.method = method
        self.object_id = object_id
        #: The resolved handler, or the reason there is none; valid while `generation`
        #: equals the registry's.
        self.handler: Handler | str = ""
        self.generation = -1
        #: The handler when it is a unary method the dispatcher may run inline (the server
        #: has no interceptors), else None.
        self.inline: Handler | None = None
        #: The cached context of calls without metadata and deadline (rule 4).
        self.ctx: CallContext | None = None
        #: A `contextvars.Context` in which `current_call()` is `ctx`: the server's fast
        #: path runs each such call in a copy of it (rule 5).
        self.base: contextvars.Context | None = None

    def forget(self) -> None:
        """Stop sharing the cached context (a call keeps it, or touched ``extra``)."""
        self.ctx = None
        self.base = None

    def serving_context(self, peer: Peer) -> contextvars.Context:
        """The base context of calls without metadata and deadline (rule 5)."""
        ctx = self.context(None, None, peer)
        base = contextvars.copy_context()
        base.run(_serving.set, ctx)
        self.base = base
        return base

    def context(
        self, metadata: dict[str, str] | None, deadline: float | None, peer: Peer
    ) -> CallContext:
        """A context for one call (the cached one when it can be shared; rule 4)."""
        if metadata is None and deadline is None:
            ctx = self.ctx
            if ctx is None:
                ctx = self.ctx = CallContext(
                    self.service, self.method, self.object_id, _EMPTY_METADATA, None, peer
                )
            return ctx
        return CallContext(
            self.service, self.method, self.object_id, metadata or _EMPTY_METADATA, deadline, peer
        )


class Routes:
    """One connection's slot table (rule 2) over the server's registry (rule 1)."""

    __slots__ = ("inline", "registry", "slots")

    def __init__(self, registry: Registry, *, inline: bool) -> None:
        self.registry = registry
        #: Whether unary methods may run inline (false when the server has interceptors).
        self.inline = inline
        self.slots: dict[int, Route] = {}

    def route(self, target: int | Target) -> Route | str:
        """The route a call names, or why the target is not acceptable (a protocol error)."""
        if isinstance(target, int):
            route = self.slots.get(target)
            if route is None:
                return f"call names method slot {target}, which this connection never bound"
        else:
            slot = target.slot
            if slot < 0 or slot > MAX_SLOTS:
                return f"method slot {slot} is out of range (1 to {MAX_SLOTS}, or 0)"
            route = Route(target.service, target.method, target.object)
            if slot:
                self.slots[slot] = route
        if route.generation != self.registry.generation:
            self.resolve(route)
        return route

    def resolve(self, route: Route) -> None:
        handler = self.registry.resolve(route.service, route.object_id, route.method)
        route.handler = handler
        route.generation = self.registry.generation
        inline = self.inline and isinstance(handler, Handler) and handler.kind == "unary"
        route.inline = handler if inline and isinstance(handler, Handler) else None
        route.forget()

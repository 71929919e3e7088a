"""Remote interfaces: which types travel by reference, and the wire form of an interface.

A class decorated with `remote` is a *remote interface*: wherever it appears in a parameter
or result annotation of another (or the same) remote interface, the value crosses the wire
as a `RemoteRef` (node address, object id, interface name) and the receiver gets a proxy
(pass by reference, as Java RMI does for ``Remote`` types). Everything else travels by value
(msgspec: scalars, lists, dicts, dataclasses, Structs, enums...).

Rules:

1. A remote type is recognised in an annotation as ``R``, ``R | None``, and inside
   ``list``/``Sequence``, ``tuple``, ``set``/``frozenset`` and ``dict`` values (and those
   nested). A remote type anywhere else (a field of a dataclass or Struct, a union with
   other types, a streamed item) is refused when the interface is read, with an error that
   names the method and the parameter.
2. The RPC layer never sees a remote type: each remote interface gets a generated *wire
   interface* (a `tejido.rpc.service` with the same wire name, methods and options) whose
   annotations have every remote type replaced by `RemoteRef`. The RPC runtime validates
   and encodes RemoteRefs like any Struct; this module's `Plan`s turn values into refs on
   the way out (`to_wire`) and refs into proxies on the way in (`from_wire`).
3. Streaming methods of a remote interface are served and called as plain RPC streams;
   they may not mention remote types (rule 1).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.rpc import MethodSpec, describe_service, service

__all__ = [
    "Marshal",
    "Plan",
    "RemoteInterface",
    "RemoteMethod",
    "RemoteRef",
    "Unmarshal",
    "interface_of",
    "is_remote",
    "remote",
]

T = TypeVar("T")

_MARK = "__tejido_remote__"
_CACHE = "__tejido_remote_interface__"


class RemoteRef(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A reference to an exported object: where it lives, its id there, its interface.

    The object id is unguessable (``secrets.token_urlsafe``), so holding a ref is what lets
    a node call the object, the way a capability works.
    """

    address: str  #: ``HOST:PORT`` of the exporting node
    object_id: str
    interface: str  #: the wire name of the remote interface

    def __str__(self) -> str:
        return f"{self.interface}@{self.address}/{self.object_id[:8]}"


#: Turns a value into a ref (exporting local objects): ``marshal(value, interface)``.
Marshal = Callable[[object, type], RemoteRef]
#: Turns a ref into a proxy (or the local object): ``await unmarshal(ref, interface)``.
Unmarshal = Callable[[RemoteRef, type], Awaitable[object]]


def remote(cls: type[T] | None = None, *, name: str | None = None) -> Any:
    """Mark an interface as remote (passed by reference); use as ``@remote`` or
    ``@remote(name="chat.Room")``. The class is also a `tejido.rpc.service`."""

    def mark(target: type[T]) -> type[T]:
        setattr(target, _MARK, True)
        try:
            service(name=name)(target)
        except LocalProtocolError as exc:
            # An annotation naming a class defined later (or the interface itself) cannot
            # be resolved yet: the interface is read at its first use instead.
            if "cannot resolve annotations" not in str(exc):
                raise
            return target
        interface_of(target)  # so that a bad interface fails at import time
        return target

    if cls is not None:
        return mark(cls)
    return mark


def is_remote(annotation: object) -> bool:
    """True for a class decorated with `remote` itself (not for its implementations)."""
    return isinstance(annotation, type) and annotation.__dict__.get(_MARK, False) is True


# ---------------------------------------------------------------------- plans
class Plan:
    """How to convert one annotated value between its Python and its wire form."""

    def to_wire(self, value: Any, marshal: Marshal) -> Any:
        raise NotImplementedError

    async def from_wire(self, value: Any, unmarshal: Unmarshal) -> Any:
        raise NotImplementedError


class _Ref(Plan):
    def __init__(self, interface: type) -> None:
        self.interface = interface

    def to_wire(self, value: Any, marshal: Marshal) -> Any:
        return marshal(value, self.interface)

    async def from_wire(self, value: Any, unmarshal: Unmarshal) -> Any:
        return await unmarshal(value, self.interface)


class _Optional(Plan):
    def __init__(self, inner: Plan) -> None:
        self.inner = inner

    def to_wire(self, value: Any, marshal: Marshal) -> Any:
        return None if value is None else self.inner.to_wire(value, marshal)

    async def from_wire(self, value: Any, unmarshal: Unmarshal) -> Any:
        return None if value is None else await self.inner.from_wire(value, unmarshal)


class _Each(Plan):
    """list, tuple[X, ...], set, frozenset: the same plan for every element."""

    def __init__(self, inner: Plan, rebuild: Callable[[Any], Any]) -> None:
        self.inner = inner
        self.rebuild = rebuild

    def to_wire(self, value: Any, marshal: Marshal) -> Any:
        return self.rebuild(self.inner.to_wire(item, marshal) for item in value)

    async def from_wire(self, value: Any, unmarshal: Unmarshal) -> Any:
        return self.rebuild([await self.inner.from_wire(item, unmarshal) for item in value])


class _Fixed(Plan):
    """tuple[A, B, C]: a plan (or None) per position."""

    def __init__(self, inner: list[Plan | None]) -> None:
        self.inner = inner

    def to_wire(self, value: Any, marshal: Marshal) -> Any:
        return tuple(
            item if plan is None else plan.to_wire(item, marshal)
            for plan, item in zip(self.inner, value, strict=True)
        )

    async def from_wire(self, value: Any, unmarshal: Unmarshal) -> Any:
        return tuple(
            [
                item if plan is None else await plan.from_wire(item, unmarshal)
                for plan, item in zip(self.inner, value, strict=True)
            ]
        )


class _Values(Plan):
    """dict[K, V] with a remote type in V (keys cannot be remote: refs as keys are rare)."""

    def __init__(self, inner: Plan) -> None:
        self.inner = inner

    def to_wire(self, value: Any, marshal: Marshal) -> Any:
        return {key: self.inner.to_wire(item, marshal) for key, item in value.items()}

    async def from_wire(self, value: Any, unmarshal: Unmarshal) -> Any:
        return {key: await self.inner.from_wire(item, unmarshal) for key, item in value.items()}


_SEQUENCES: dict[Any, Callable[[Any], Any]] = {
    list: list,
    collections.abc.Sequence: list,
    collections.abc.MutableSequence: list,
    set: set,
    collections.abc.Set: frozenset,
    collections.abc.MutableSet: set,
    frozenset: frozenset,
}
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


class Unsupported(LocalProtocolError):
    """A remote type appears where it cannot be passed by reference (rule 1)."""


def rewrite(annotation: Any, where: str) -> tuple[Any, Plan | None]:
    """(wire annotation, plan) for one annotation; plan is None when nothing is remote."""
    if is_remote(annotation):
        return RemoteRef, _Ref(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return rewrite(args[0], where)
    if origin in (typing.Union, types.UnionType):
        members = [rewrite(arg, where) for arg in args]
        if all(plan is None for _, plan in members):
            return annotation, None
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(args) == 2:
            wire, plan = rewrite(others[0], where)
            assert plan is not None
            return wire | None, _Optional(plan)
        raise Unsupported(f"{where}: a remote type may only be combined with None ({annotation})")
    if origin in _SEQUENCES and args:
        wire, plan = rewrite(args[0], where)
        if plan is None:
            return annotation, None
        rebuild = _SEQUENCES[origin]
        wire_origin: Any = rebuild if rebuild in (set, frozenset) else list
        return _subscript(wire_origin, wire), _Each(plan, rebuild)
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            wire, plan = rewrite(args[0], where)
            if plan is None:
                return annotation, None
            return _subscript(tuple, (wire, ...)), _Each(plan, tuple)
        parts = [rewrite(arg, where) for arg in args]
        if all(plan is None for _, plan in parts):
            return annotation, None
        wires = tuple(wire for wire, _ in parts)
        return _subscript(tuple, wires), _Fixed([plan for _, plan in parts])
    if origin in _MAPPINGS and len(args) == 2:
        if _mentions_remote(args[0], set()):
            raise Unsupported(f"{where}: dictionary keys cannot be remote references")
        wire, plan = rewrite(args[1], where)
        if plan is None:
            return annotation, None
        return _subscript(dict, (args[0], wire)), _Values(plan)
    if _mentions_remote(annotation, set()):
        raise Unsupported(
            f"{where}: {annotation!r} holds a remote type inside it; pass-by-reference works "
            "for parameters and results typed R, R | None, list/tuple/set of R or dict of R "
            "(a field can hold a RemoteRef and be turned into a proxy with node.proxy)"
        )
    return annotation, None


def _subscript(origin: Any, args: Any) -> Any:
    """``origin[args]`` for a generic built at runtime (e.g. ``list[RemoteRef]``)."""
    return origin[args]


def _mentions_remote(annotation: Any, seen: set[int]) -> bool:
    """Whether a remote type hides anywhere in `annotation` (fields of classes included)."""
    if is_remote(annotation):
        return True
    if id(annotation) in seen:
        return False
    seen.add(id(annotation))
    if any(_mentions_remote(arg, seen) for arg in typing.get_args(annotation)):
        return True
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or issubclass(annotation, msgspec.Struct)
    ):
        try:
            hints = typing.get_type_hints(annotation)
        except Exception:
            return False
        return any(_mentions_remote(hint, seen) for hint in hints.values())
    return False


# ---------------------------------------------------------------------- interfaces
@dataclasses.dataclass(frozen=True)
class RemoteMethod:
    """One method of a remote interface, with the plans of its parameters and result."""

    attr: str
    spec: MethodSpec  #: the wire method
    params: tuple[str, ...]
    plans: tuple[Plan | None, ...]  #: one per parameter in `params`
    result: Plan | None
    signature: inspect.Signature  #: the interface's own signature, without ``self``

    @property
    def converts(self) -> bool:
        return self.result is not None or any(plan is not None for plan in self.plans)


@dataclasses.dataclass(frozen=True)
class RemoteInterface:
    """A remote interface read once: its wire interface and its methods' plans."""

    interface: type
    name: str
    wire: type
    methods: dict[str, RemoteMethod]  #: by attribute name


def interface_of(interface: type) -> RemoteInterface:
    """The `RemoteInterface` of a class decorated with `remote` (built once, then cached)."""
    cached = interface.__dict__.get(_CACHE)
    if isinstance(cached, RemoteInterface):
        return cached
    if not is_remote(interface):
        raise LocalProtocolError(
            f"{getattr(interface, '__name__', interface)!r} is not a remote interface "
            "(decorate it with @tejido.remote.remote)"
        )
    spec = describe_service(interface)
    namespace: dict[str, Any] = {"errors": tuple(spec.errors.values())}
    methods: dict[str, RemoteMethod] = {}
    for method_spec in spec.methods.values():
        where = f"{spec.name}.{method_spec.attr}"
        fn = getattr(interface, method_spec.attr)
        wire_fn, method = _wire_method(where, fn, method_spec)
        namespace[method_spec.attr] = wire_fn
        methods[method_spec.attr] = method
    wire = types.new_class(f"{interface.__name__}Wire", (), {}, lambda ns: ns.update(namespace))
    wire.__module__ = interface.__module__
    service(name=spec.name)(wire)
    wire_spec = describe_service(wire)
    methods = {
        attr: dataclasses.replace(method, spec=wire_spec.by_attr(attr))
        for attr, method in methods.items()
    }
    result = RemoteInterface(interface, spec.name, wire, methods)
    setattr(interface, _CACHE, result)
    return result


def _wire_method(
    where: str, fn: Callable[..., Any], spec: MethodSpec
) -> tuple[Callable[..., Any], RemoteMethod]:
    streams = spec.kind not in ("unary", "oneway")
    annotations: dict[str, Any] = {}
    plans: list[Plan | None] = []
    names: list[str] = []
    for param in spec.params:
        wire, plan = rewrite(param.annotation, f"{where} parameter {param.name!r}")
        annotations[param.name] = wire
        plans.append(plan)
        names.append(param.name)
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    if spec.stream_param is not None:
        annotations[spec.stream_param] = hints[spec.stream_param]
        if _mentions_remote(spec.stream_item, set()):
            raise Unsupported(f"{where}: streamed items cannot be remote references")
    result_plan: Plan | None = None
    if streams:
        if _mentions_remote(spec.result, set()) or any(plan is not None for plan in plans):
            raise Unsupported(f"{where}: a streaming method cannot pass remote references")
        annotations["return"] = hints["return"]
    else:
        annotations["return"], result_plan = rewrite(hints["return"], f"{where} result")
    parameters = [
        parameter.replace(annotation=annotations.get(parameter.name, parameter.annotation))
        for parameter in signature.parameters.values()
    ]
    wire_signature = signature.replace(
        parameters=parameters, return_annotation=annotations["return"]
    )
    wire_fn = _declaration(fn)
    wire_fn.__signature__ = wire_signature  # type: ignore[attr-defined]
    wire_fn.__annotations__ = annotations
    wire_fn.__name__ = fn.__name__
    wire_fn.__qualname__ = fn.__qualname__
    wire_fn.__dict__.update(fn.__dict__)  # the @method options (idempotent, oneway, ...)
    own = signature.replace(parameters=list(signature.parameters.values())[1:])
    method = RemoteMethod(spec.attr, spec, tuple(names), tuple(plans), result_plan, own)
    return wire_fn, method


def _declaration(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A fresh function of the same flavour (async, async generator, plain) as `fn`."""
    if inspect.isasyncgenfunction(fn):

        async def agen(*args: Any, **kwargs: Any) -> Any:
            empty: tuple[Any, ...] = ()
            for item in empty:  # the yield only makes this an async generator
                yield item
            raise NotImplementedError

        return agen
    if inspect.iscoroutinefunction(fn):

        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        return coroutine

    def plain(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    return plain

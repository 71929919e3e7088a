"""Service interfaces: a class of annotated async methods, read once into a `ServiceSpec`.

An interface is declared once and shared by the server (which registers an implementation,
usually a subclass) and the client (whose stub has the interface's type, so type checkers
see the real signatures)::

    class NotFound(ServiceError): ...

    @service
    class Calculator:
        errors = (NotFound,)

        async def add(self, a: int, b: int) -> int: ...

        @method(idempotent=True)
        async def lookup(self, name: str) -> float: ...

        def count(self, upto: int) -> AsyncIterator[int]: ...      # server streaming

        async def total(self, values: AsyncIterator[float]) -> float: ...  # client streaming

        @method(oneway=True)
        async def log(self, line: str) -> None: ...

Method kinds come from the annotations: a return of ``AsyncIterator[T]`` (or
``AsyncIterable[T]``) streams results (declare such a method as a plain ``def`` in the
interface, ``def count(self, upto: int) -> AsyncIterator[int]: ...``, so that type checkers
accept ``async for x in stub.count(5)``; ``async def`` works too and is awaited first); one
parameter annotated so streams arguments (the other parameters are sent first, in the
opening call). Every parameter and result type must
be one msgspec can validate: scalars, bytes, lists, tuples, dicts, dataclasses, msgspec
Structs, enums, ``X | None``. `describe_service` refuses anything else with an error that
names the method and the parameter.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.rpc.errors import ServiceError

__all__ = [
    "MethodKind",
    "MethodSpec",
    "Param",
    "ServiceSpec",
    "describe_service",
    "method",
    "service",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

MethodKind = Literal["unary", "server_stream", "client_stream", "bidi_stream", "oneway"]

_SPEC_ATTR = "__tejido_service__"
_NAME_ATTR = "__tejido_service_name__"
_OPTIONS_ATTR = "__tejido_method__"
_STREAM_ORIGINS = (collections.abc.AsyncIterator, collections.abc.AsyncIterable)


@dataclasses.dataclass(frozen=True)
class _MethodOptions:
    idempotent: bool = False
    oneway: bool = False
    raises: tuple[type[ServiceError], ...] = ()
    name: str | None = None


def method(
    *,
    idempotent: bool = False,
    oneway: bool = False,
    raises: tuple[type[ServiceError], ...] = (),
    name: str | None = None,
) -> Callable[[F], F]:
    """Options for one interface method.

    `idempotent` lets the client retry it after a failure that may have reached the server;
    `oneway` sends the call without waiting for (or getting) a result or an error; `raises`
    adds declared errors to the interface's; `name` renames it on the wire.
    """

    def mark(fn: F) -> F:
        setattr(fn, _OPTIONS_ATTR, _MethodOptions(idempotent, oneway, tuple(raises), name))
        return fn

    return mark


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of an interface method (``self`` excluded)."""

    name: str
    annotation: Any
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """Everything the runtime needs to call or serve one method."""

    name: str  #: the wire name
    attr: str  #: the Python attribute name on the interface
    kind: MethodKind
    params: tuple[Param, ...]  #: parameters sent in the opening call
    stream_param: str | None  #: the streamed parameter (client / bidi streaming)
    stream_item: Any  #: item type of the streamed parameter
    result: Any  #: result type (item type for server / bidi streams; None for oneway)
    idempotent: bool
    raises: tuple[type[ServiceError], ...]
    #: msgspec Struct (array-like) holding the opening call's arguments, for validation.
    args_type: type[msgspec.Struct]


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """An interface read into wire names, kinds and types."""

    name: str
    interface: type
    methods: dict[str, MethodSpec]  #: by wire name
    errors: dict[str, type[ServiceError]]  #: every declared error, by wire name

    def by_attr(self, attr: str) -> MethodSpec:
        for spec in self.methods.values():
            if spec.attr == attr:
                return spec
        raise LocalProtocolError(f"{self.name} has no method {attr!r}")


def service(cls: type[T] | None = None, *, name: str | None = None) -> Any:
    """Mark a class as a service interface (optionally renaming it on the wire).

    Use as ``@service`` or ``@service(name="pkg.Calculator")``. The interface is read
    (and checked) at once, so a bad annotation fails at import time, not at the first call.
    """

    def mark(target: type[T]) -> type[T]:
        setattr(target, _NAME_ATTR, name or target.__name__)
        if _SPEC_ATTR in target.__dict__:
            delattr(target, _SPEC_ATTR)
        describe_service(target)
        return target

    if cls is not None:
        return mark(cls)
    return mark


def _error_name(error: type[ServiceError]) -> str:
    return error.__name__


def describe_service(interface: type) -> ServiceSpec:
    """The `ServiceSpec` of an interface (read once, then cached on the class)."""
    cached = interface.__dict__.get(_SPEC_ATTR)
    if isinstance(cached, ServiceSpec):
        return cached
    service_name = getattr(interface, _NAME_ATTR, interface.__name__)
    declared: dict[str, type[ServiceError]] = {}
    for error in getattr(interface, "errors", ()):
        _check_error(service_name, error)
        declared[_error_name(error)] = error
    methods: dict[str, MethodSpec] = {}
    for attr, fn in _interface_methods(interface):
        one = _describe_method(service_name, interface, attr, fn, declared)
        if one.name in methods:
            raise LocalProtocolError(f"{service_name}: two methods are named {one.name!r}")
        methods[one.name] = one
        for error in one.raises:
            declared.setdefault(_error_name(error), error)
    if not methods:
        raise LocalProtocolError(f"{service_name} declares no async methods")
    spec = ServiceSpec(service_name, interface, methods, declared)
    setattr(interface, _SPEC_ATTR, spec)
    return spec


def _check_error(where: str, error: object) -> None:
    if not (isinstance(error, type) and issubclass(error, ServiceError)):
        raise LocalProtocolError(
            f"{where}: declared error {error!r} must be a subclass of tejido.rpc.ServiceError"
        )


def _interface_methods(interface: type) -> list[tuple[str, Callable[..., Any]]]:
    found: list[tuple[str, Callable[..., Any]]] = []
    seen: set[str] = set()
    for klass in interface.__mro__:
        if klass is object:
            continue
        for attr, value in klass.__dict__.items():
            if attr.startswith("_") or attr in seen:
                continue
            seen.add(attr)
            if (
                inspect.iscoroutinefunction(value)
                or inspect.isasyncgenfunction(value)
                or _returns_stream(value)
            ):
                found.append((attr, value))
    found.sort(key=lambda item: item[0])
    return found


def _returns_stream(value: object) -> bool:
    """A plain ``def m(...) -> AsyncIterator[T]``: a server-streaming method whose stub
    returns the iterator directly (so ``async for x in stub.m()`` type-checks)."""
    if not inspect.isfunction(value):
        return False
    try:
        hints = typing.get_type_hints(value)
    except Exception:
        return False
    return _stream_item(hints.get("return"))[0]


def _stream_item(annotation: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(annotation)
    if origin in _STREAM_ORIGINS:
        args = typing.get_args(annotation)
        return True, args[0] if args else Any
    return False, None


def _describe_method(
    service_name: str,
    interface: type,
    attr: str,
    fn: Callable[..., Any],
    declared: dict[str, type[ServiceError]],
) -> MethodSpec:
    where = f"{service_name}.{attr}"
    options: _MethodOptions = getattr(fn, _OPTIONS_ATTR, _MethodOptions())
    for error in options.raises:
        _check_error(where, error)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise LocalProtocolError(f"{where}: cannot resolve annotations ({exc})") from None
    signature = inspect.signature(fn)
    params: list[Param] = []
    stream_param: str | None = None
    stream_item: Any = None
    for index, parameter in enumerate(signature.parameters.values()):
        if index == 0:
            continue  # self
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise LocalProtocolError(f"{where}: *args and **kwargs cannot cross the wire")
        if parameter.name not in hints:
            raise LocalProtocolError(f"{where}: parameter {parameter.name!r} has no annotation")
        annotation = hints[parameter.name]
        is_stream, item = _stream_item(annotation)
        if is_stream:
            if stream_param is not None:
                raise LocalProtocolError(f"{where}: at most one parameter may be streamed")
            stream_param, stream_item = parameter.name, item
            continue
        params.append(Param(parameter.name, annotation, parameter.default))
    if "return" not in hints:
        raise LocalProtocolError(f"{where}: the return type has no annotation")
    result = hints["return"]
    streams_out, out_item = _stream_item(result)
    if inspect.isasyncgenfunction(fn) and not streams_out:
        raise LocalProtocolError(f"{where}: an async generator must be annotated AsyncIterator[T]")
    kind: MethodKind
    if options.oneway:
        if streams_out or stream_param is not None:
            raise LocalProtocolError(f"{where}: a oneway method cannot stream")
        if result not in (None, type(None)):
            raise LocalProtocolError(f"{where}: a oneway method must return None")
        kind, result = "oneway", None
    elif streams_out and stream_param is not None:
        kind, result = "bidi_stream", out_item
    elif streams_out:
        kind, result = "server_stream", out_item
    elif stream_param is not None:
        kind = "client_stream"
    else:
        kind = "unary"
    args_type = _args_struct(where, attr, params)
    for check_type, what in ((result, "result"), (stream_item, "streamed argument")):
        if check_type is not None:
            _check_type(where, what, check_type)
    return MethodSpec(
        name=options.name or attr,
        attr=attr,
        kind=kind,
        params=tuple(params),
        stream_param=stream_param,
        stream_item=stream_item,
        result=result,
        idempotent=options.idempotent,
        raises=tuple(options.raises),
        args_type=args_type,
    )


def _check_type(where: str, what: str, annotation: Any) -> None:
    try:
        msgspec.msgpack.Decoder(annotation)
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(
            f"{where}: the {what} type {annotation!r} cannot be sent over the wire ({exc})"
        ) from None


def _args_struct(where: str, attr: str, params: list[Param]) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for param in params:
        _check_type(where, f"parameter {param.name!r}", param.annotation)
        if param.required:
            fields.append((param.name, param.annotation))
        else:
            fields.append((param.name, param.annotation, param.default))
    try:
        return msgspec.defstruct(f"{attr}_args", fields, array_like=True, frozen=True)
    except TypeError as exc:
        raise LocalProtocolError(f"{where}: {exc}") from None

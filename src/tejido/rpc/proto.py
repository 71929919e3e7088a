"""A service interface as a proto3 schema: the .proto text, runtime descriptors, and values.

`proto_schema(interface)` reads a `ServiceSpec` into one proto3 file, built once as a
`FileDescriptorProto`. The same descriptor gives both faces of the schema, so they cannot
disagree: `ProtoSchema.proto_text()` renders it as a .proto file for other languages'
code generators, and a private `DescriptorPool` turns it into message classes at run time
(so a server needs no generated code). `ProtoMethod` converts between Python values (as
msgspec would decode them for the interface's annotations) and those messages.

Rules (docs/rpc-grpc.md has the table):

1. Names. The proto package is the dotted prefix of the service's wire name
   (``@service(name="shop.v1.Shop")`` -> ``shop.v1``), else the interface's module name.
   An rpc is the method's wire name in CamelCase (``get_item`` -> ``GetItem``). Each
   method gets ``<Rpc>Request`` (its parameters, field numbers in parameter order) and
   ``<Rpc>Response`` (one field ``value`` holding the result, so scalars, lists and
   optionals all fit; no field for ``-> None``). Every message and enum is top-level in
   the package; two types with one name are refused.
2. Types. int -> int64, float -> double, str -> string, bytes -> bytes, bool -> bool;
   list[T] / tuple[T, ...] / set[T] -> repeated T; dict[str|int, V] -> map; dataclasses
   and msgspec Structs -> messages (fields numbered in declaration order); enums with int
   values -> enums, values prefixed with the enum's name in UPPER_SNAKE; ``T | None`` ->
   ``optional T``. Where proto3 has no direct form (a list of lists, a list of optionals,
   an optional list, a map of lists) the inner type is wrapped in a message with a single
   field ``value``, named after its content (``Int64List``, ``OptionalString``).
   Anything else is refused with an error naming the method, the parameter and the type.
3. Enums. proto3 needs a first value of 0. An enum with a member of value 0 lists it
   first; otherwise ``<NAME>_UNSPECIFIED = 0`` is added, and receiving it is a bad
   argument (it names no member).
4. Presence. Scalar and enum fields of a parameter or field with a default are
   ``optional``: absent means "use the default". ``T | None`` absent means None (or the
   default, when there is one). A message-typed field without a default must be sent.
   Repeated and map fields have no presence: absent means empty.
5. Streams. A streamed result is a stream of ``<Rpc>Response``. A streamed parameter adds
   one field (after the others) to ``<Rpc>Request``: when the method has other parameters
   the first request message carries them and no item, and each later message carries
   one item; without other parameters every message is one item.
6. Deterministic: the same interface gives a byte-identical file (no set or hash order).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import sys
import types
import typing
from collections.abc import Iterable
from typing import Any, Union

import msgspec
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tejido.core.errors import LocalProtocolError
from tejido.rpc.errors import BadArguments
from tejido.rpc.service import MethodSpec, ServiceSpec, describe_service

__all__ = [
    "ProtoMethod",
    "ProtoSchema",
    "proto_schema",
    "proto_text",
]

_FDP = descriptor_pb2.FieldDescriptorProto
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT32 = (-(2**31), 2**31 - 1)


# ---------------------------------------------------------------- shapes


@dataclasses.dataclass(frozen=True)
class _Scalar:
    proto: str  #: proto3 scalar type name
    py: type
    label: str  #: used to name wrapper messages
    type_code: int


_SCALARS: dict[type, _Scalar] = {
    bool: _Scalar("bool", bool, "Bool", _FDP.TYPE_BOOL),
    int: _Scalar("int64", int, "Int64", _FDP.TYPE_INT64),
    float: _Scalar("double", float, "Double", _FDP.TYPE_DOUBLE),
    str: _Scalar("string", str, "String", _FDP.TYPE_STRING),
    bytes: _Scalar("bytes", bytes, "Bytes", _FDP.TYPE_BYTES),
    bytearray: _Scalar("bytes", bytes, "Bytes", _FDP.TYPE_BYTES),
}


@dataclasses.dataclass(frozen=True)
class _Enum:
    cls: type[enum.Enum]
    name: str
    values: tuple[tuple[str, int], ...]  #: (proto value name, number), zero first

    @property
    def label(self) -> str:
        return self.name


@dataclasses.dataclass(eq=False)
class _Field:
    name: str  #: the Python attribute / parameter name, also the proto field name
    key: str  #: key in the msgspec builtin form (a Struct's encode_name)
    number: int
    shape: _Shape
    has_default: bool


@dataclasses.dataclass(eq=False)
class _Message:
    """A dataclass, a Struct, or (cls None) a method's request / response message."""

    cls: type | None
    name: str
    fields: list[_Field] = dataclasses.field(default_factory=list)
    array_like: bool = False

    @property
    def label(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class _List:
    item: _Shape

    @property
    def label(self) -> str:
        return self.item.label + "List"


@dataclasses.dataclass(frozen=True)
class _Map:
    key: _Scalar
    value: _Shape

    @property
    def label(self) -> str:
        return f"{self.key.label}To{self.value.label}Map"


@dataclasses.dataclass(frozen=True)
class _Optional:
    inner: _Shape

    @property
    def label(self) -> str:
        return "Optional" + self.inner.label


@dataclasses.dataclass(eq=False)
class _Wrap:
    """A message with one field ``value``, for a type proto3 cannot place directly."""

    inner: _Shape
    name: str

    @property
    def label(self) -> str:
        return self.name


_Shape = _Scalar | _Enum | _Message | _List | _Map | _Optional | _Wrap
_Direct = (_Scalar, _Enum, _Message, _Wrap)  # shapes a repeated / map / optional can hold


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


class _Builder:
    """Reads annotations into shapes, registering every message and enum name once."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.names: dict[str, object] = {}  # proto name -> the type (or key) that owns it
        self.messages: list[_Message | _Wrap] = []
        self.enums: list[_Enum] = []
        self._by_class: dict[type, _Message | _Enum] = {}
        self._wraps: dict[str, _Wrap] = {}

    def claim(self, name: str, owner: object, where: str) -> None:
        other = self.names.get(name)
        if other is not None and other is not owner:
            raise LocalProtocolError(
                f"{where}: two proto types would be named {name!r} ({_describe(other)} and "
                f"{_describe(owner)}); rename one"
            )
        self.names[name] = owner

    def shape(self, tp: Any, where: str) -> _Shape:
        if isinstance(tp, type) and tp in _SCALARS:
            return _SCALARS[tp]
        if isinstance(tp, typing.NewType):
            return self.shape(tp.__supertype__, where)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:  # constraints are checked by msgspec on decode
            return self.shape(args[0], where)
        if origin in (Union, types.UnionType):
            others = [a for a in args if a is not type(None)]
            if len(others) == 1 and len(args) == 2:
                return _Optional(self._placeable(self.shape(others[0], where), where))
            raise LocalProtocolError(f"{where}: unions other than `T | None` have no proto3 form")
        if origin in (list, set, frozenset) or (
            origin is tuple and len(args) == 2 and args[1] is Ellipsis
        ):
            return _List(self._placeable(self.shape(args[0], where), where))
        if origin is dict:
            key = self.shape(args[0], where)
            if not (isinstance(key, _Scalar) and key.py in (str, int)):
                raise LocalProtocolError(f"{where}: map keys must be str or int, not {args[0]!r}")
            return _Map(key, self._placeable(self.shape(args[1], where), where))
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum(tp, where)
        if isinstance(tp, type) and (
            dataclasses.is_dataclass(tp) or issubclass(tp, msgspec.Struct)
        ):
            return self._message(tp, where)
        raise LocalProtocolError(f"{where}: type {tp!r} has no proto3 mapping")

    def _placeable(self, shape: _Shape, where: str) -> _Shape:
        """`shape` where a repeated, map or optional field holds it (wrapped if it must be)."""
        if isinstance(shape, _Direct):
            return shape
        name = shape.label
        wrap = self._wraps.get(name)
        if wrap is None:
            wrap = _Wrap(shape, name)
            self.claim(name, wrap, where)
            self._wraps[name] = wrap
            self.messages.append(wrap)
        return wrap

    def _enum(self, cls: type[enum.Enum], where: str) -> _Enum:
        known = self._by_class.get(cls)
        if isinstance(known, _Enum):
            return known
        if issubclass(cls, enum.Flag):
            raise LocalProtocolError(f"{where}: flag enum {cls.__name__} has no proto3 form")
        prefix = _upper_snake(cls.__name__)
        values: list[tuple[str, int]] = []
        for member in cls:
            number = member.value
            if not isinstance(number, int) or isinstance(number, bool):
                raise LocalProtocolError(
                    f"{where}: enum {cls.__name__} must have int values for proto3 "
                    f"({member.name} = {number!r})"
                )
            if not _INT32[0] <= number <= _INT32[1]:
                raise LocalProtocolError(f"{where}: enum {cls.__name__}.{member.name} > int32")
            values.append((f"{prefix}_{member.name.upper()}", number))
        zero = [item for item in values if item[1] == 0]
        if zero:
            values.remove(zero[0])
            values.insert(0, zero[0])
        else:
            values.insert(0, (f"{prefix}_UNSPECIFIED", 0))
        if len({name for name, _ in values}) != len(values):
            raise LocalProtocolError(f"{where}: enum {cls.__name__} has clashing value names")
        shape = _Enum(cls, cls.__name__, tuple(values))
        self.claim(shape.name, cls, where)
        self._by_class[cls] = shape
        self.enums.append(shape)
        return shape

    def _message(self, cls: type, where: str) -> _Message:
        known = self._by_class.get(cls)
        if isinstance(known, _Message):
            return known
        array_like = issubclass(cls, msgspec.Struct) and bool(cls.__struct_config__.array_like)
        shape = _Message(cls, cls.__name__, array_like=array_like)
        self.claim(shape.name, cls, where)
        self._by_class[cls] = shape  # before the fields: a type may contain itself
        self.messages.append(shape)
        for number, (name, key, annotation, has_default) in enumerate(_class_fields(cls), 1):
            inner_where = f"{where} (field {cls.__name__}.{name})"
            shape.fields.append(
                _Field(name, key, number, self.shape(annotation, inner_where), has_default)
            )
        return shape


def _describe(owner: object) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    if isinstance(owner, _Wrap):
        return f"the wrapper for {owner.inner.label}"
    if isinstance(owner, ServiceSpec):
        return f"the service {owner.name}"
    if isinstance(owner, _Message):
        return f"the generated message {owner.name}"
    return str(owner)


def _class_fields(cls: type) -> list[tuple[str, str, Any, bool]]:
    """(name, builtin key, annotation, has default) of a dataclass's or Struct's fields."""
    if issubclass(cls, msgspec.Struct):
        return [
            (
                f.name,
                f.encode_name,
                f.type,
                f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT,
            )
            for f in msgspec.structs.fields(cls)
        ]
    hints = typing.get_type_hints(cls, include_extras=True)
    return [
        (
            f.name,
            f.name,
            hints[f.name],
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
        )
        for f in dataclasses.fields(typing.cast(Any, cls))
        if f.init
    ]


# ---------------------------------------------------------------- descriptors


def _type_name(package: str, shape: _Enum | _Message | _Wrap) -> str:
    return f".{package}.{shape.name}"


def _set_type(field: Any, package: str, shape: _Shape) -> None:
    """Set the type of a singular field (or a repeated field's item) holding `shape`."""
    if isinstance(shape, _Scalar):
        field.type = shape.type_code
    elif isinstance(shape, _Enum):
        field.type = _FDP.TYPE_ENUM
        field.type_name = _type_name(package, shape)
    elif isinstance(shape, _Message | _Wrap):
        field.type = _FDP.TYPE_MESSAGE
        field.type_name = _type_name(package, shape)
    else:  # pragma: no cover - the builder wraps everything else
        raise LocalProtocolError(f"cannot place {shape!r} in a field")


def _add_field(message: Any, package: str, field: _Field) -> None:
    proto = message.field.add(name=field.name, number=field.number)
    shape, optional = field.shape, field.has_default
    if isinstance(shape, _Optional):
        shape, optional = shape.inner, True
    if isinstance(shape, _List):
        proto.label = _FDP.LABEL_REPEATED
        _set_type(proto, package, shape.item)
    elif isinstance(shape, _Map):
        entry = message.nested_type.add(name=_camel(field.name) + "Entry")
        entry.options.map_entry = True
        key = entry.field.add(name="key", number=1, label=_FDP.LABEL_OPTIONAL)
        _set_type(key, package, shape.key)
        value = entry.field.add(name="value", number=2, label=_FDP.LABEL_OPTIONAL)
        _set_type(value, package, shape.value)
        proto.label = _FDP.LABEL_REPEATED
        proto.type = _FDP.TYPE_MESSAGE
        proto.type_name = f".{package}.{message.name}.{entry.name}"
    else:
        proto.label = _FDP.LABEL_OPTIONAL
        _set_type(proto, package, shape)
        if optional and isinstance(shape, _Scalar | _Enum):
            proto.proto3_optional = True


def _message_proto(package: str, shape: _Message | _Wrap) -> Any:
    message = descriptor_pb2.DescriptorProto(name=shape.name)
    fields = (
        shape.fields
        if isinstance(shape, _Message)
        else [_Field("value", "", 1, shape.inner, False)]
    )
    for field in fields:
        _add_field(message, package, field)
    for proto in message.field:  # proto3 `optional` is a synthetic one-field oneof
        if proto.proto3_optional:
            proto.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name="_" + proto.name)
    return message


# ---------------------------------------------------------------- values: Python -> protobuf


def _scalar(shape: _Scalar, value: Any, where: str) -> Any:
    if shape.py is bytes:
        ok = isinstance(value, bytes | bytearray | memoryview)
        value = bytes(value) if ok else value
    elif shape.py is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif shape.py is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -(2**63) <= value < 2**63:
            raise BadArguments(f"{where}: {value} does not fit in int64")
    else:
        ok = isinstance(value, shape.py)
    if not ok:
        raise BadArguments(f"{where}: expected {shape.py.__name__}, got {type(value).__name__}")
    return value


def _enum_number(shape: _Enum, value: Any, where: str) -> int:
    if not isinstance(value, shape.cls):
        raise BadArguments(f"{where}: expected {shape.name}, got {type(value).__name__}")
    number: int = value.value
    return number


def _put(message: Any, name: str, shape: _Shape, value: Any, where: str) -> None:
    """Store `value` (a Python value of `shape`) into field `name` of `message`."""
    if isinstance(shape, _Optional):
        if value is not None:
            _put(message, name, shape.inner, value, where)
    elif isinstance(shape, _Scalar):
        setattr(message, name, _scalar(shape, value, where))
    elif isinstance(shape, _Enum):
        setattr(message, name, _enum_number(shape, value, where))
    elif isinstance(shape, _Message | _Wrap):
        _fill(getattr(message, name), shape, value, where)
    elif isinstance(shape, _List):
        if isinstance(value, str | bytes | bytearray | dict) or not isinstance(value, Iterable):
            raise BadArguments(f"{where}: expected a sequence, got {type(value).__name__}")
        target = getattr(message, name)
        for index, item in enumerate(value):
            _append(target, shape.item, item, f"{where}[{index}]")
    else:
        if not isinstance(value, dict):
            raise BadArguments(f"{where}: expected a dict, got {type(value).__name__}")
        target = getattr(message, name)
        for key, item in value.items():
            inner = f"{where}[{key!r}]"
            key = _scalar(shape.key, key, inner)
            if isinstance(shape.value, _Message | _Wrap):
                _fill(target[key], shape.value, item, inner)
            else:
                target[key] = _item_value(shape.value, item, inner)


def _item_value(shape: _Shape, value: Any, where: str) -> Any:
    if isinstance(shape, _Scalar):
        return _scalar(shape, value, where)
    if isinstance(shape, _Enum):
        return _enum_number(shape, value, where)
    raise LocalProtocolError(f"{where}: {shape!r} is not a scalar")  # pragma: no cover


def _append(target: Any, shape: _Shape, value: Any, where: str) -> None:
    if isinstance(shape, _Message | _Wrap):
        _fill(target.add(), shape, value, where)
    else:
        target.append(_item_value(shape, value, where))


def _fill(message: Any, shape: _Message | _Wrap, value: Any, where: str) -> None:
    message.SetInParent()
    if isinstance(shape, _Wrap):
        _put(message, "value", shape.inner, value, where)
        return
    if shape.cls is not None and not isinstance(value, shape.cls):
        raise BadArguments(f"{where}: expected {shape.name}, got {type(value).__name__}")
    for field in shape.fields:
        _put(message, field.name, field.shape, getattr(value, field.name), f"{where}.{field.name}")


# ---------------------------------------------------------------- values: protobuf -> Python


def _has_presence(shape: _Shape, has_default: bool) -> bool:
    return isinstance(shape, _Optional | _Message | _Wrap) or (
        has_default and isinstance(shape, _Scalar | _Enum)
    )


_ABSENT = object()


def _get(message: Any, field: _Field) -> Any:
    """The builtin form of one field, or `_ABSENT` when it is absent and has a default."""
    if _has_presence(field.shape, field.has_default) and not message.HasField(field.name):
        if field.has_default:
            return _ABSENT
        return None if isinstance(field.shape, _Optional) else _ABSENT
    shape = field.shape.inner if isinstance(field.shape, _Optional) else field.shape
    value = getattr(message, field.name)
    if isinstance(shape, _List):
        return [_builtin(shape.item, item) for item in value]
    if isinstance(shape, _Map):
        return {key: _builtin(shape.value, item) for key, item in value.items()}
    return _builtin(shape, value)


def _builtin(shape: _Shape, value: Any) -> Any:
    if isinstance(shape, _Wrap):
        return _get(value, _Field("value", "value", 1, shape.inner, False))
    if isinstance(shape, _Message):
        return _read(value, shape)
    return value


def _read(message: Any, shape: _Message) -> Any:
    """A message as the builtin form msgspec converts into `shape.cls`."""
    if not shape.array_like:
        out: dict[str, Any] = {}
        for field in shape.fields:
            value = _get(message, field)
            if value is not _ABSENT:
                out[field.key] = value
        return out
    items: list[Any] = []
    defaults = {f.name: f for f in msgspec.structs.fields(typing.cast(Any, shape.cls))}
    for field in shape.fields:
        value = _get(message, field)
        if value is _ABSENT:
            info = defaults[field.name]
            if info.default is not msgspec.NODEFAULT:
                value = info.default
            elif info.default_factory is not msgspec.NODEFAULT:
                value = info.default_factory()
            else:
                raise BadArguments(f"{shape.name}: required field {field.name!r} is missing")
        items.append(value)
    return items


def _convert(raw: Any, annotation: Any, where: str) -> Any:
    try:
        return msgspec.convert(raw, annotation)
    except msgspec.ValidationError as exc:
        raise BadArguments(f"{where}: {exc}") from None


# ---------------------------------------------------------------- the schema


@dataclasses.dataclass(frozen=True)
class ProtoMethod:
    """One rpc: its messages, and conversions between Python values and those messages.

    Every ``encode_*`` raises `BadArguments` when a value does not match the interface's
    annotation; every ``decode_*`` raises `BadArguments` when a message does not (an
    unknown enum number, a missing required message field, a failed constraint).
    """

    spec: MethodSpec
    rpc: str  #: the rpc name in the .proto (CamelCase)
    path: str  #: the gRPC path, ``/package.Service/Rpc``
    request_class: type[Any]
    response_class: type[Any]
    _request: _Message
    _response: _Message

    @property
    def client_streaming(self) -> bool:
        return self.spec.kind in ("client_stream", "bidi_stream")

    @property
    def server_streaming(self) -> bool:
        return self.spec.kind in ("server_stream", "bidi_stream")

    @property
    def header_first(self) -> bool:
        """A client stream whose first message carries the other arguments (and no item)."""
        return self.client_streaming and bool(self.spec.params)

    def encode_args(self, arguments: dict[str, Any]) -> Any:
        """The request message carrying the call's (non-streamed) arguments, by name."""
        message = self.request_class()
        for field in self._request.fields[: len(self.spec.params)]:
            if field.name in arguments:
                value = arguments[field.name]
                if value is None and not isinstance(field.shape, _Optional):
                    continue
                _put(message, field.name, field.shape, value, field.name)
            elif not field.has_default:
                raise BadArguments(f"{self.spec.name}: argument {field.name!r} is missing")
        return message

    def decode_args(self, message: Any) -> dict[str, Any]:
        """The call's (non-streamed) arguments from a request message, as keyword arguments."""
        arguments: dict[str, Any] = {}
        for field, param in zip(self._request.fields, self.spec.params, strict=False):
            raw = _get(message, field)
            if raw is _ABSENT:
                if param.required:
                    raise BadArguments(f"{self.spec.name}: argument {param.name!r} is missing")
                continue
            arguments[param.name] = _convert(raw, param.annotation, f"argument {param.name!r}")
        return arguments

    def encode_item(self, value: Any) -> Any:
        """A request message carrying one item of the streamed parameter."""
        field = self._item_field()
        message = self.request_class()
        _put(message, field.name, field.shape, value, field.name)
        return message

    def decode_item(self, message: Any) -> Any:
        field = self._item_field()
        raw = _get(message, field)
        if raw is _ABSENT:
            raise BadArguments(f"{self.spec.name}: stream message without {field.name!r}")
        return _convert(raw, self.spec.stream_item, f"streamed {field.name!r} item")

    def encode_result(self, value: Any) -> Any:
        """The response message for a result (or one streamed result item)."""
        message = self.response_class()
        if self._response.fields:
            field = self._response.fields[0]
            _put(message, "value", field.shape, value, "result")
        return message

    def decode_result(self, message: Any) -> Any:
        if not self._response.fields:
            return None
        raw = _get(message, self._response.fields[0])
        if raw is _ABSENT:
            raise BadArguments(f"{self.spec.name}: the response carries no value")
        return _convert(raw, self.spec.result, "result")

    def _item_field(self) -> _Field:
        if not self.client_streaming:
            raise LocalProtocolError(f"{self.spec.name} takes no streamed parameter")
        return self._request.fields[-1]


@dataclasses.dataclass(frozen=True)
class ProtoSchema:
    """One interface as a proto3 file: descriptor, message classes and rpc conversions."""

    spec: ServiceSpec
    package: str
    service: str  #: the service name in the .proto
    file: Any  #: the `FileDescriptorProto`
    methods: dict[str, ProtoMethod]  #: by rpc name
    source: str  #: where the interface lives, for the file's header comment

    @property
    def full_name(self) -> str:
        return f"{self.package}.{self.service}"

    def proto_text(self) -> str:
        return _render(self)


_SCHEMAS: dict[type, ProtoSchema] = {}


def proto_schema(interface: type | ServiceSpec) -> ProtoSchema:
    """The proto3 schema of a service interface (built once per interface)."""
    spec = interface if isinstance(interface, ServiceSpec) else describe_service(interface)
    known = _SCHEMAS.get(spec.interface)
    if known is None:
        known = _SCHEMAS[spec.interface] = _build(spec)
    return known


def proto_text(interface: type | ServiceSpec) -> str:
    """The .proto file of a service interface."""
    return proto_schema(interface).proto_text()


def _package(spec: ServiceSpec) -> tuple[str, str]:
    package, _, service = spec.name.rpartition(".")
    if not package:
        package = spec.interface.__module__
        if package == "__main__":
            main_spec = getattr(sys.modules["__main__"], "__spec__", None)
            if main_spec is None:
                raise LocalProtocolError(
                    f"{spec.name}: the interface lives in a script, so its proto package is "
                    f'unknown; name it with one: @service(name="pkg.{spec.name}")'
                )
            package = main_spec.name
    for part in [*package.split("."), service]:
        if not _IDENT.match(part):
            raise LocalProtocolError(
                f"{spec.name}: {part!r} is not a valid proto identifier (package {package!r})"
            )
    return package, service


def _build(spec: ServiceSpec) -> ProtoSchema:
    package, service_name = _package(spec)
    builder = _Builder(package)
    shapes: list[tuple[MethodSpec, str, _Message, _Message]] = []
    rpcs: dict[str, str] = {}
    builder.claim(service_name, spec, spec.name)  # the service shares the package's scope
    for method in spec.methods.values():
        rpc = _camel(method.name)
        where = f"{spec.name}.{method.attr}"
        if not _IDENT.match(rpc):
            raise LocalProtocolError(f"{where}: {method.name!r} is not a valid rpc name")
        if rpc in rpcs:
            raise LocalProtocolError(
                f"{where}: methods {rpcs[rpc]!r} and {method.name!r} are both rpc {rpc!r}"
            )
        rpcs[rpc] = method.name
        request = _Message(None, rpc + "Request")
        builder.claim(request.name, request, where)
        builder.messages.append(request)
        for number, param in enumerate(method.params, 1):
            shape = builder.shape(param.annotation, f"{where}: parameter {param.name!r}")
            request.fields.append(_Field(param.name, param.name, number, shape, not param.required))
        if method.stream_param is not None:
            what = f"{where}: streamed parameter {method.stream_param!r}"
            shape = builder.shape(method.stream_item, what)
            request.fields.append(
                _Field(
                    method.stream_param, method.stream_param, len(request.fields) + 1, shape, False
                )
            )
        response = _Message(None, rpc + "Response")
        builder.claim(response.name, response, where)
        builder.messages.append(response)
        if method.result not in (None, type(None)):
            shape = builder.shape(method.result, f"{where}: result")
            response.fields.append(_Field("value", "value", 1, shape, False))
        shapes.append((method, rpc, request, response))
    file = descriptor_pb2.FileDescriptorProto(
        name=package.replace(".", "/") + f"/{_snake(service_name)}.proto",
        package=package,
        syntax="proto3",
    )
    for message in builder.messages:
        file.message_type.append(_message_proto(package, message))
    for shape in builder.enums:
        proto_enum = file.enum_type.add(name=shape.name)
        for value_name, number in shape.values:
            proto_enum.value.add(name=value_name, number=number)
    service = file.service.add(name=service_name)
    for method, rpc, request, response in shapes:
        rpc_proto = service.method.add(
            name=rpc,
            input_type=_type_name(package, request),
            output_type=_type_name(package, response),
        )
        if method.kind in ("client_stream", "bidi_stream"):
            rpc_proto.client_streaming = True
        if method.kind in ("server_stream", "bidi_stream"):
            rpc_proto.server_streaming = True
    pool = descriptor_pool.DescriptorPool()
    try:
        pool.Add(file)
    except Exception as exc:  # the descriptor pool names what it rejects
        raise LocalProtocolError(f"{spec.name}: the proto schema is invalid ({exc})") from None

    def message_class(name: str) -> type[Any]:
        cls: type[Any] = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{package}.{name}")
        )
        return cls

    methods = {
        rpc: ProtoMethod(
            spec=method,
            rpc=rpc,
            path=f"/{package}.{service_name}/{rpc}",
            request_class=message_class(request.name),
            response_class=message_class(response.name),
            _request=request,
            _response=response,
        )
        for method, rpc, request, response in shapes
    }
    source = f"{spec.interface.__module__}.{spec.interface.__qualname__}"
    return ProtoSchema(spec, package, service_name, file, methods, source)


def _snake(name: str) -> str:
    return _upper_snake(name).lower()


# ---------------------------------------------------------------- .proto text

_SCALAR_NAMES = {
    _FDP.TYPE_BOOL: "bool",
    _FDP.TYPE_INT64: "int64",
    _FDP.TYPE_DOUBLE: "double",
    _FDP.TYPE_STRING: "string",
    _FDP.TYPE_BYTES: "bytes",
}


def _field_type(package: str, field: Any) -> str:
    if field.type in _SCALAR_NAMES:
        return _SCALAR_NAMES[field.type]
    return _short(package, field.type_name)


def _short(package: str, type_name: str) -> str:
    prefix = f".{package}."
    return type_name[len(prefix) :] if type_name.startswith(prefix) else type_name


def _render_message(package: str, message: Any) -> list[str]:
    entries = {f".{package}.{message.name}.{n.name}": n for n in message.nested_type}
    lines = [f"message {message.name} {{"]
    for field in message.field:
        if field.type_name in entries:
            key, value = entries[field.type_name].field
            kind = f"map<{_field_type(package, key)}, {_field_type(package, value)}>"
        else:
            kind = _field_type(package, field)
            if field.label == _FDP.LABEL_REPEATED:
                kind = "repeated " + kind
            elif field.proto3_optional:
                kind = "optional " + kind
        lines.append(f"  {kind} {field.name} = {field.number};")
    lines.append("}")
    return lines


def _rpc_comment(method: ProtoMethod) -> list[str]:
    spec = method.spec
    notes: list[str] = []
    if spec.kind == "oneway":
        notes.append("oneway in tejido: the response is empty")
    if method.header_first:
        notes.append(
            f"first message: the arguments; each later message: one {spec.stream_param!r} item"
        )
    if spec.raises:
        notes.append("raises " + ", ".join(error.__name__ for error in spec.raises))
    if spec.idempotent:
        notes.append("idempotent: safe to retry")
    return [f"  // {note}" for note in notes]


def _render(schema: ProtoSchema) -> str:
    file, package = schema.file, schema.package
    lines = [
        f"// Generated by `tejido rpc proto` from {schema.source}; do not edit.",
        'syntax = "proto3";',
        "",
        f"package {package};",
        "",
    ]
    if schema.spec.errors:
        names = ", ".join(sorted(schema.spec.errors))
        lines.append(f"// Declared errors ({names}) arrive as a status whose details start")
        lines.append("// with the error's name, also in trailing metadata `tejido-error-type`.")
    lines.append(f"service {schema.service} {{")
    for proto_method, method in zip(file.service[0].method, schema.methods.values(), strict=True):
        stream_in = "stream " if proto_method.client_streaming else ""
        stream_out = "stream " if proto_method.server_streaming else ""
        request = stream_in + _short(package, proto_method.input_type)
        response = stream_out + _short(package, proto_method.output_type)
        lines.extend(_rpc_comment(method))
        lines.append(f"  rpc {proto_method.name}({request}) returns ({response});")
    lines.append("}")
    for message in file.message_type:
        lines.append("")
        lines.extend(_render_message(package, message))
    for proto_enum in file.enum_type:
        lines.append("")
        lines.append(f"enum {proto_enum.name} {{")
        lines.extend(f"  {value.name} = {value.number};" for value in proto_enum.value)
        lines.append("}")
    return "\n".join(lines) + "\n"

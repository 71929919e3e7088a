"""Python annotations as protobuf shapes, and values converted between the two.

Internal to `tejido.rpc.proto` (whose docstring states the mapping rules): a `Builder`
reads annotations into shapes (`Scalar`, `EnumShape`, `MessageShape`, `ListShape`, `MapShape`,
`OptionalShape`, `WrapShape`), `message_proto` turns a message shape into a
`DescriptorProto`, `put_value` stores a Python value into a protobuf message field, and
`get_value` reads one back in the builtin form `msgspec.convert` turns into the annotated
type (so msgspec, not this module, builds dataclasses and enums and checks constraints).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, Union

import msgspec
from google.protobuf import descriptor_pb2

from tejido.core.errors import LocalProtocolError
from tejido.rpc.errors import BadArguments
from tejido.rpc.service import ServiceSpec

FDP = descriptor_pb2.FieldDescriptorProto
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT32 = (-(2**31), 2**31 - 1)


# ---------------------------------------------------------------- shapes


@dataclasses.dataclass(frozen=True)
class Scalar:
    proto: str  #: proto3 scalar type name
    py: type
    label: str  #: used to name wrapper messages
    type_code: int


SCALARS: dict[type, Scalar] = {
    bool: Scalar("bool", bool, "Bool", FDP.TYPE_BOOL),
    int: Scalar("int64", int, "Int64", FDP.TYPE_INT64),
    float: Scalar("double", float, "Double", FDP.TYPE_DOUBLE),
    str: Scalar("string", str, "String", FDP.TYPE_STRING),
    bytes: Scalar("bytes", bytes, "Bytes", FDP.TYPE_BYTES),
    bytearray: Scalar("bytes", bytes, "Bytes", FDP.TYPE_BYTES),
}


@dataclasses.dataclass(frozen=True)
class EnumShape:
    cls: type[enum.Enum]
    name: str
    values: tuple[tuple[str, int], ...]  #: (proto value name, number), zero first

    @property
    def label(self) -> str:
        return self.name


@dataclasses.dataclass(eq=False)
class Field:
    name: str  #: the Python attribute / parameter name, also the proto field name
    key: str  #: key in the msgspec builtin form (a Struct's encode_name)
    number: int
    shape: Shape
    has_default: bool


@dataclasses.dataclass(eq=False)
class MessageShape:
    """A dataclass, a Struct, or (cls None) a method's request / response message."""

    cls: type | None
    name: str
    fields: list[Field] = dataclasses.field(default_factory=list)
    array_like: bool = False

    @property
    def label(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class ListShape:
    item: Shape

    @property
    def label(self) -> str:
        return self.item.label + "List"


@dataclasses.dataclass(frozen=True)
class MapShape:
    key: Scalar
    value: Shape

    @property
    def label(self) -> str:
        return f"{self.key.label}To{self.value.label}Map"


@dataclasses.dataclass(frozen=True)
class OptionalShape:
    inner: Shape

    @property
    def label(self) -> str:
        return "Optional" + self.inner.label


@dataclasses.dataclass(eq=False)
class WrapShape:
    """A message with one field ``value``, for a type proto3 cannot place directly."""

    inner: Shape
    name: str

    @property
    def label(self) -> str:
        return self.name


@dataclasses.dataclass(eq=False)
class UnionShape:
    """A union of tagged msgspec Structs: a message whose fields (one per member, named
    after the member's tag) form the oneof ``kind``; exactly one is set."""

    name: str
    members: list[tuple[str, MessageShape, str, Any]]  #: (field, shape, tag field, tag value)

    @property
    def label(self) -> str:
        return self.name


Shape = (
    Scalar
    | EnumShape
    | MessageShape
    | ListShape
    | MapShape
    | OptionalShape
    | WrapShape
    | UnionShape
)
Node = MessageShape | WrapShape | UnionShape  # shapes that are messages of their own
DIRECT = (Scalar, EnumShape, MessageShape, WrapShape, UnionShape)  # what a repeated field holds


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


class Builder:
    """Reads annotations into shapes, registering every message and enum name once."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.names: dict[str, object] = {}  # proto name -> the type (or key) that owns it
        self.messages: list[Node] = []
        self.enums: list[EnumShape] = []
        self._by_class: dict[type, MessageShape | EnumShape] = {}
        self._wraps: dict[str, WrapShape] = {}
        self._unions: dict[tuple[type, ...], UnionShape] = {}

    def claim(self, name: str, owner: object, where: str) -> None:
        other = self.names.get(name)
        if other is not None and other is not owner:
            raise LocalProtocolError(
                f"{where}: two proto types would be named {name!r} ({_describe(other)} and "
                f"{_describe(owner)}); rename one"
            )
        self.names[name] = owner

    def shape(self, tp: Any, where: str) -> Shape:
        if isinstance(tp, type) and tp in SCALARS:
            return SCALARS[tp]
        if isinstance(tp, typing.NewType):
            return self.shape(tp.__supertype__, where)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:  # constraints are checked by msgspec on decode
            return self.shape(args[0], where)
        if origin is typing.Literal:  # msgspec checks the value on decode
            if all(isinstance(a, str) for a in args):
                return SCALARS[str]
            if all(isinstance(a, int) and not isinstance(a, bool) for a in args):
                return SCALARS[int]
            raise LocalProtocolError(f"{where}: a Literal must be all str or all int: {tp!r}")
        if origin in (Union, types.UnionType):
            others = [a for a in args if a is not type(None)]
            if len(others) == 1 and len(args) == 2:
                return OptionalShape(self._placeable(self.shape(others[0], where), where))
            if len(others) == len(args) and all(_tagged(a) for a in args):
                return self._union(tuple(args), where)
            raise LocalProtocolError(f"{where}: unions other than `T | None` have no proto3 form")
        if origin in (list, set, frozenset) or (
            origin is tuple and len(args) == 2 and args[1] is Ellipsis
        ):
            return ListShape(self._placeable(self.shape(args[0], where), where))
        if origin is dict:
            key = self.shape(args[0], where)
            if not (isinstance(key, Scalar) and key.py in (str, int)):
                raise LocalProtocolError(f"{where}: map keys must be str or int, not {args[0]!r}")
            return MapShape(key, self._placeable(self.shape(args[1], where), where))
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum(tp, where)
        if isinstance(tp, type) and (
            dataclasses.is_dataclass(tp) or issubclass(tp, msgspec.Struct)
        ):
            return self._message(tp, where)
        raise LocalProtocolError(f"{where}: type {tp!r} has no proto3 mapping")

    def _placeable(self, shape: Shape, where: str) -> Shape:
        """`shape` where a repeated, map or optional field holds it (wrapped if it must be)."""
        if isinstance(shape, DIRECT):
            return shape
        name = shape.label
        wrap = self._wraps.get(name)
        if wrap is None:
            wrap = WrapShape(shape, name)
            self.claim(name, wrap, where)
            self._wraps[name] = wrap
            self.messages.append(wrap)
        return wrap

    def _union(self, classes: tuple[type, ...], where: str) -> UnionShape:
        known = self._unions.get(classes)
        if known is not None:
            return known
        shape = UnionShape("Or".join(cls.__name__ for cls in classes), [])
        self.claim(shape.name, shape, where)
        self._unions[classes] = shape
        self.messages.append(shape)
        for cls in classes:
            config = cls.__struct_config__  # type: ignore[attr-defined]
            member = self._message(cls, where)
            name = re.sub(r"\W", "_", str(config.tag)).lower()
            if member.array_like or not IDENT.match(name):
                raise LocalProtocolError(f"{where}: union member {cls.__name__} has no proto3 form")
            shape.members.append((name, member, config.tag_field, config.tag))
        if len({name for name, *_ in shape.members}) != len(classes):
            raise LocalProtocolError(f"{where}: union {shape.name} has clashing tags")
        return shape

    def _enum(self, cls: type[enum.Enum], where: str) -> EnumShape:
        known = self._by_class.get(cls)
        if isinstance(known, EnumShape):
            return known
        if issubclass(cls, enum.Flag):
            raise LocalProtocolError(f"{where}: flag enum {cls.__name__} has no proto3 form")
        prefix = upper_snake(cls.__name__)
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
        shape = EnumShape(cls, cls.__name__, tuple(values))
        self.claim(shape.name, cls, where)
        self._by_class[cls] = shape
        self.enums.append(shape)
        return shape

    def _message(self, cls: type, where: str) -> MessageShape:
        known = self._by_class.get(cls)
        if isinstance(known, MessageShape):
            return known
        array_like = issubclass(cls, msgspec.Struct) and bool(cls.__struct_config__.array_like)
        shape = MessageShape(cls, cls.__name__, array_like=array_like)
        self.claim(shape.name, cls, where)
        self._by_class[cls] = shape  # before the fields: a type may contain itself
        self.messages.append(shape)
        for number, (name, key, annotation, has_default) in enumerate(_class_fields(cls), 1):
            inner_where = f"{where} (field {cls.__name__}.{name})"
            shape.fields.append(
                Field(name, key, number, self.shape(annotation, inner_where), has_default)
            )
        return shape


def _describe(owner: object) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    if isinstance(owner, WrapShape):
        return f"the wrapper for {owner.inner.label}"
    if isinstance(owner, ServiceSpec):
        return f"the service {owner.name}"
    if isinstance(owner, MessageShape | UnionShape):
        return f"the generated message {owner.name}"
    return str(owner)


def _tagged(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and issubclass(tp, msgspec.Struct)
        and tp.__struct_config__.tag is not None
    )


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


def type_name(package: str, shape: EnumShape | Node) -> str:
    return f".{package}.{shape.name}"


def _set_type(field: Any, package: str, shape: Shape) -> None:
    """Set the type of a singular field (or a repeated field's item) holding `shape`."""
    if isinstance(shape, Scalar):
        field.type = shape.type_code
    elif isinstance(shape, EnumShape):
        field.type = FDP.TYPE_ENUM
        field.type_name = type_name(package, shape)
    elif isinstance(shape, Node):
        field.type = FDP.TYPE_MESSAGE
        field.type_name = type_name(package, shape)
    else:  # pragma: no cover - the builder wraps everything else
        raise LocalProtocolError(f"cannot place {shape!r} in a field")


def _add_field(message: Any, package: str, field: Field) -> None:
    proto = message.field.add(name=field.name, number=field.number)
    shape, optional = field.shape, field.has_default
    if isinstance(shape, OptionalShape):
        shape, optional = shape.inner, True
    if isinstance(shape, ListShape):
        proto.label = FDP.LABEL_REPEATED
        _set_type(proto, package, shape.item)
    elif isinstance(shape, MapShape):
        entry = message.nested_type.add(name=camel(field.name) + "Entry")
        entry.options.map_entry = True
        key = entry.field.add(name="key", number=1, label=FDP.LABEL_OPTIONAL)
        _set_type(key, package, shape.key)
        value = entry.field.add(name="value", number=2, label=FDP.LABEL_OPTIONAL)
        _set_type(value, package, shape.value)
        proto.label = FDP.LABEL_REPEATED
        proto.type = FDP.TYPE_MESSAGE
        proto.type_name = f".{package}.{message.name}.{entry.name}"
    else:
        proto.label = FDP.LABEL_OPTIONAL
        _set_type(proto, package, shape)
        if optional and isinstance(shape, Scalar | EnumShape):
            proto.proto3_optional = True


def message_proto(package: str, shape: Node) -> Any:
    message = descriptor_pb2.DescriptorProto(name=shape.name)
    if isinstance(shape, UnionShape):
        message.oneof_decl.add(name="kind")
        for number, (name, member, _, _) in enumerate(shape.members, 1):
            field = message.field.add(name=name, number=number, label=FDP.LABEL_OPTIONAL)
            _set_type(field, package, member)
            field.oneof_index = 0
        return message
    fields = (
        shape.fields
        if isinstance(shape, MessageShape)
        else [Field("value", "", 1, shape.inner, False)]
    )
    for field in fields:
        _add_field(message, package, field)
    for proto in message.field:  # proto3 `optional` is a synthetic one-field oneof
        if proto.proto3_optional:
            proto.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name="_" + proto.name)
    return message


# ---------------------------------------------------------------- values: Python -> protobuf


def _scalar(shape: Scalar, value: Any, where: str) -> Any:
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


def _enum_number(shape: EnumShape, value: Any, where: str) -> int:
    if not isinstance(value, shape.cls):
        raise BadArguments(f"{where}: expected {shape.name}, got {type(value).__name__}")
    number: int = value.value
    return number


def put_value(message: Any, name: str, shape: Shape, value: Any, where: str) -> None:
    """Store `value` (a Python value of `shape`) into field `name` of `message`."""
    if isinstance(shape, OptionalShape):
        if value is not None:
            put_value(message, name, shape.inner, value, where)
    elif isinstance(shape, Scalar):
        setattr(message, name, _scalar(shape, value, where))
    elif isinstance(shape, EnumShape):
        setattr(message, name, _enum_number(shape, value, where))
    elif isinstance(shape, Node):
        _fill(getattr(message, name), shape, value, where)
    elif isinstance(shape, ListShape):
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
            if isinstance(shape.value, Node):
                _fill(target[key], shape.value, item, inner)
            else:
                target[key] = _item_value(shape.value, item, inner)


def _item_value(shape: Shape, value: Any, where: str) -> Any:
    if isinstance(shape, Scalar):
        return _scalar(shape, value, where)
    if isinstance(shape, EnumShape):
        return _enum_number(shape, value, where)
    raise LocalProtocolError(f"{where}: {shape!r} is not a scalar")  # pragma: no cover


def _append(target: Any, shape: Shape, value: Any, where: str) -> None:
    if isinstance(shape, Node):
        _fill(target.add(), shape, value, where)
    else:
        target.append(_item_value(shape, value, where))


def _fill(message: Any, shape: Node, value: Any, where: str) -> None:
    message.SetInParent()
    if isinstance(shape, UnionShape):
        for name, member, _, _ in shape.members:
            if isinstance(value, typing.cast(type, member.cls)):
                _fill(getattr(message, name), member, value, f"{where}.{name}")
                return
        raise BadArguments(f"{where}: expected {shape.name}, got {type(value).__name__}")
    if isinstance(shape, WrapShape):
        put_value(message, "value", shape.inner, value, where)
        return
    if shape.cls is not None and not isinstance(value, shape.cls):
        raise BadArguments(f"{where}: expected {shape.name}, got {type(value).__name__}")
    for field in shape.fields:
        put_value(
            message, field.name, field.shape, getattr(value, field.name), f"{where}.{field.name}"
        )


# ---------------------------------------------------------------- values: protobuf -> Python


def _has_presence(shape: Shape, has_default: bool) -> bool:
    return isinstance(shape, OptionalShape | Node) or (
        has_default and isinstance(shape, Scalar | EnumShape)
    )


ABSENT = object()


def get_value(message: Any, field: Field) -> Any:
    """The builtin form of one field, or `ABSENT` when it is absent and has a default."""
    if _has_presence(field.shape, field.has_default) and not message.HasField(field.name):
        if field.has_default:
            return ABSENT
        return None if isinstance(field.shape, OptionalShape) else ABSENT
    shape = field.shape.inner if isinstance(field.shape, OptionalShape) else field.shape
    value = getattr(message, field.name)
    if isinstance(shape, ListShape):
        return [_builtin(shape.item, item) for item in value]
    if isinstance(shape, MapShape):
        return {key: _builtin(shape.value, item) for key, item in value.items()}
    return _builtin(shape, value)


def _builtin(shape: Shape, value: Any) -> Any:
    if isinstance(shape, WrapShape):
        return get_value(value, Field("value", "value", 1, shape.inner, False))
    if isinstance(shape, MessageShape):
        return _read(value, shape)
    if isinstance(shape, UnionShape):
        which = value.WhichOneof("kind")
        for name, member, tag_field, tag in shape.members:
            if name == which:
                out = _read(getattr(value, name), member)
                out[tag_field] = tag
                return out
        raise BadArguments(f"{shape.name}: none of its kinds is set")
    return value


def _read(message: Any, shape: MessageShape) -> Any:
    """A message as the builtin form msgspec converts into `shape.cls`."""
    if not shape.array_like:
        out: dict[str, Any] = {}
        for field in shape.fields:
            value = get_value(message, field)
            if value is not ABSENT:
                out[field.key] = value
        return out
    items: list[Any] = []
    defaults = {f.name: f for f in msgspec.structs.fields(typing.cast(Any, shape.cls))}
    for field in shape.fields:
        value = get_value(message, field)
        if value is ABSENT:
            info = defaults[field.name]
            if info.default is not msgspec.NODEFAULT:
                value = info.default
            elif info.default_factory is not msgspec.NODEFAULT:
                value = info.default_factory()
            else:
                raise BadArguments(f"{shape.name}: required field {field.name!r} is missing")
        items.append(value)
    return items


def convert(raw: Any, annotation: Any, where: str) -> Any:
    try:
        return msgspec.convert(raw, annotation)
    except msgspec.ValidationError as exc:
        raise BadArguments(f"{where}: {exc}") from None

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
   the package; two types with one name are refused, except that a generated message
   whose name an interface's own type already has is renamed ``<Service><Rpc>Request``
   (then ``...Request2``, ...), so the interface's types keep their names.
2. Types. int -> int64, float -> double, str -> string, bytes -> bytes, bool -> bool;
   list[T] / tuple[T, ...] / set[T] -> repeated T; dict[str|int, V] -> map; dataclasses
   and msgspec Structs -> messages (fields numbered in declaration order); enums with int
   values -> enums, values prefixed with the enum's name in UPPER_SNAKE; ``T | None`` ->
   ``optional T``; ``Literal`` of str (int) values -> string (int64), checked on decode;
   a union of tagged msgspec Structs -> a message of its own named ``AOrBOrC`` whose
   fields (one per member, named after its tag) form the oneof ``kind``. Where proto3
   has no direct form (a list of lists, a list of optionals, an optional list, a map of
   lists) the inner type is wrapped in a message with a single field ``value``, named
   after its content (``Int64List``, ``OptionalString``).
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
import sys
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tejido.core.errors import LocalProtocolError
from tejido.rpc.errors import BadArguments
from tejido.rpc.proto_types import (
    ABSENT,
    FDP,
    IDENT,
    Builder,
    Field,
    MessageShape,
    OptionalShape,
    camel,
    convert,
    get_value,
    message_proto,
    put_value,
    type_name,
    upper_snake,
)
from tejido.rpc.service import MethodSpec, ServiceSpec, describe_service

__all__ = [
    "ProtoMethod",
    "ProtoSchema",
    "proto_schema",
    "proto_text",
]

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
    _request: MessageShape
    _response: MessageShape

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
                if value is None and not isinstance(field.shape, OptionalShape):
                    continue
                put_value(message, field.name, field.shape, value, field.name)
            elif not field.has_default:
                raise BadArguments(f"{self.spec.name}: argument {field.name!r} is missing")
        return message

    def decode_args(self, message: Any) -> dict[str, Any]:
        """The call's (non-streamed) arguments from a request message, as keyword arguments."""
        arguments: dict[str, Any] = {}
        for field, param in zip(self._request.fields, self.spec.params, strict=False):
            raw = get_value(message, field)
            if raw is ABSENT:
                if param.required:
                    raise BadArguments(f"{self.spec.name}: argument {param.name!r} is missing")
                continue
            arguments[param.name] = convert(raw, param.annotation, f"argument {param.name!r}")
        return arguments

    def encode_item(self, value: Any) -> Any:
        """A request message carrying one item of the streamed parameter."""
        field = self._item_field()
        message = self.request_class()
        put_value(message, field.name, field.shape, value, field.name)
        return message

    def decode_item(self, message: Any) -> Any:
        field = self._item_field()
        raw = get_value(message, field)
        if raw is ABSENT:
            raise BadArguments(f"{self.spec.name}: stream message without {field.name!r}")
        return convert(raw, self.spec.stream_item, f"streamed {field.name!r} item")

    def encode_result(self, value: Any) -> Any:
        """The response message for a result (or one streamed result item)."""
        message = self.response_class()
        if self._response.fields:
            field = self._response.fields[0]
            put_value(message, "value", field.shape, value, "result")
        return message

    def decode_result(self, message: Any) -> Any:
        if not self._response.fields:
            return None
        raw = get_value(message, self._response.fields[0])
        if raw is ABSENT:
            raise BadArguments(f"{self.spec.name}: the response carries no value")
        return convert(raw, self.spec.result, "result")

    def _item_field(self) -> Field:
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
        if not IDENT.match(part):
            raise LocalProtocolError(
                f"{spec.name}: {part!r} is not a valid proto identifier (package {package!r})"
            )
    return package, service


def _build(spec: ServiceSpec) -> ProtoSchema:
    package, service_name = _package(spec)
    builder = Builder(package)
    shapes: list[tuple[MethodSpec, str, MessageShape, MessageShape]] = []
    rpcs: dict[str, str] = {}
    builder.claim(service_name, spec, spec.name)  # the service shares the package's scope
    taken = _type_names(package, spec)
    for method in spec.methods.values():
        rpc = camel(method.name)
        where = f"{spec.name}.{method.attr}"
        if not IDENT.match(rpc):
            raise LocalProtocolError(f"{where}: {method.name!r} is not a valid rpc name")
        if rpc in rpcs:
            raise LocalProtocolError(
                f"{where}: methods {rpcs[rpc]!r} and {method.name!r} are both rpc {rpc!r}"
            )
        rpcs[rpc] = method.name
        request = MessageShape(None, _free(service_name, rpc, "Request", taken))
        builder.claim(request.name, request, where)
        builder.messages.append(request)
        for number, param in enumerate(method.params, 1):
            shape = builder.shape(param.annotation, f"{where}: parameter {param.name!r}")
            request.fields.append(Field(param.name, param.name, number, shape, not param.required))
        if method.stream_param is not None:
            what = f"{where}: streamed parameter {method.stream_param!r}"
            shape = builder.shape(method.stream_item, what)
            request.fields.append(
                Field(
                    method.stream_param, method.stream_param, len(request.fields) + 1, shape, False
                )
            )
        response = MessageShape(None, _free(service_name, rpc, "Response", taken))
        builder.claim(response.name, response, where)
        builder.messages.append(response)
        if method.result not in (None, type(None)):
            shape = builder.shape(method.result, f"{where}: result")
            response.fields.append(Field("value", "value", 1, shape, False))
        shapes.append((method, rpc, request, response))
    file = descriptor_pb2.FileDescriptorProto(
        name=package.replace(".", "/") + f"/{_snake(service_name)}.proto",
        package=package,
        syntax="proto3",
    )
    for message in builder.messages:
        file.message_type.append(message_proto(package, message))
    for shape in builder.enums:
        proto_enum = file.enum_type.add(name=shape.name)
        for value_name, number in shape.values:
            proto_enum.value.add(name=value_name, number=number)
    service = file.service.add(name=service_name)
    for method, rpc, request, response in shapes:
        rpc_proto = service.method.add(
            name=rpc,
            input_type=type_name(package, request),
            output_type=type_name(package, response),
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


def _type_names(package: str, spec: ServiceSpec) -> set[str]:
    """The proto names of the interface's own types (a dry run of the builder)."""
    scratch = Builder(package)
    for method in spec.methods.values():
        where = f"{spec.name}.{method.attr}"
        for param in method.params:
            scratch.shape(param.annotation, f"{where}: parameter {param.name!r}")
        if method.stream_param is not None:
            scratch.shape(method.stream_item, f"{where}: streamed parameter")
        if method.result not in (None, type(None)):
            scratch.shape(method.result, f"{where}: result")
    return set(scratch.names)


def _free(service: str, rpc: str, suffix: str, taken: set[str]) -> str:
    """Rule 1: ``<Rpc><suffix>``, unless one of the interface's types has that name."""
    name = rpc + suffix
    if name not in taken:
        return name
    name, number = service + rpc + suffix, 2
    while name in taken:
        name, number = f"{service}{rpc}{suffix}{number}", number + 1
    return name


def _snake(name: str) -> str:
    return upper_snake(name).lower()


# ---------------------------------------------------------------- .proto text

_SCALAR_NAMES = {
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
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
    real_oneofs = {f.oneof_index for f in message.field if f.HasField("oneof_index")} - {
        f.oneof_index for f in message.field if f.proto3_optional
    }
    for index in sorted(real_oneofs):  # a union's members (proto_types.UnionShape)
        lines.append(f"  oneof {message.oneof_decl[index].name} {{")
        for field in message.field:
            if field.HasField("oneof_index") and field.oneof_index == index:
                kind = _field_type(package, field)
                lines.append(f"    {kind} {field.name} = {field.number};")
        lines.append("  }")
    for field in message.field:
        if field.HasField("oneof_index") and field.oneof_index in real_oneofs:
            continue
        if field.type_name in entries:
            key, value = entries[field.type_name].field
            kind = f"map<{_field_type(package, key)}, {_field_type(package, value)}>"
        else:
            kind = _field_type(package, field)
            if field.label == FDP.LABEL_REPEATED:
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

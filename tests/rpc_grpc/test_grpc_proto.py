"""tejido.rpc.proto: every supported type survives Python -> protobuf bytes -> Python,
unsupported types are refused by name, the output is deterministic, and protoc reads the
.proto text into exactly the descriptor the server builds at run time."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NewType

import msgspec
import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from tejido.core.errors import LocalProtocolError
from tejido.rpc import BadArguments, service
from tejido.rpc import proto as proto_module
from tejido.rpc.proto import proto_schema, proto_text
from tejido.rpc.service import describe_service


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 0
    HIGH = 5
    NEGATIVE = -3


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


class Tagged(msgspec.Struct, frozen=True):
    name: str
    point: Point | None = None
    level: Level = Level.HIGH
    labels: dict[str, str] = {}


class Pair(msgspec.Struct, array_like=True, frozen=True):
    a: int
    b: str = "z"


@dataclasses.dataclass(frozen=True)
class Tree:
    value: int
    children: list[Tree] = dataclasses.field(default_factory=list)


UserId = NewType("UserId", str)
_counter = itertools.count()


def echo_service(annotation: Any, default: Any = inspect.Parameter.empty) -> type:
    """A fresh interface with one method ``echo(self, x: annotation) -> annotation``."""

    async def echo(self: object, x: Any = default) -> Any:
        return x

    if default is inspect.Parameter.empty:

        async def echo(self: object, x: Any) -> Any:  # type: ignore[no-redef]
            return x

    echo.__annotations__ = {"x": annotation, "return": annotation}
    cls = type("Echo", (), {"echo": echo, "__module__": __name__})
    decorated: type = service(name=f"roundtrip.v{next(_counter)}.Echo")(cls)
    return decorated


def wire(message: Any) -> Any:
    """The message after a trip through its bytes."""
    return type(message).FromString(message.SerializeToString())


CASES: list[tuple[Any, Any]] = [
    (int, 0),
    (int, -(2**63)),
    (int, 2**63 - 1),
    (float, 1.5),
    (float, -0.25),
    (str, ""),
    (str, "héllo ✓"),
    (bytes, b"\x00\xffbin"),
    (bool, True),
    (bool, False),
    (Colour, Colour.GREEN),
    (Level, Level.LOW),
    (Level, Level.NEGATIVE),
    (list[int], [3, 1, 2]),
    (list[int], []),
    (tuple[str, ...], ("a", "b")),
    (set[int], {4, 1}),
    (list[list[int]], [[1], [], [2, 3]]),
    (list[int | None], [1, None, 3]),
    (list[int] | None, None),
    (list[int] | None, []),
    (list[int] | None, [0]),
    (int | None, None),
    (int | None, 0),
    (str | None, "x"),
    (Colour | None, None),
    (Colour | None, Colour.RED),
    (dict[str, Point], {"origin": Point(0.0, 0.0), "p": Point(1.5, -2.0)}),
    (dict[int, list[str]], {1: ["a"], 2: []}),
    (dict[str, int | None], {"none": None, "zero": 0}),
    (dict[str, Colour], {"c": Colour.GREEN}),
    (Point, Point(3.0, 4.0)),
    (Point | None, None),
    (Point | None, Point(0.0, 0.0)),
    (list[Point], [Point(1.0, 2.0), Point(0.0, 0.0)]),
    (Tagged, Tagged("t")),
    (Tagged, Tagged("t", Point(1.0, 1.0), Level.LOW, {"k": "v"})),
    (Pair, Pair(7)),
    (Pair, Pair(0, "")),
    (Tree, Tree(1, [Tree(2), Tree(3, [Tree(4)])])),
    (Annotated[int, msgspec.Meta(ge=0)], 5),
    (UserId, UserId("u-1")),
]


@pytest.mark.parametrize(("annotation", "value"), CASES, ids=[repr(c[1])[:40] for c in CASES])
def test_every_supported_type_round_trips(annotation: Any, value: Any) -> None:
    method = proto_schema(echo_service(annotation)).methods["Echo"]
    arguments = method.decode_args(wire(method.encode_args({"x": value})))
    assert arguments == {"x": value}
    assert type(arguments["x"]) is type(value)
    assert method.decode_result(wire(method.encode_result(value))) == value


def test_a_default_is_used_only_when_the_argument_is_absent() -> None:
    method = proto_schema(echo_service(int, default=10)).methods["Echo"]
    assert method.decode_args(wire(method.encode_args({}))) == {}  # the implementation's 10
    assert method.decode_args(wire(method.encode_args({"x": 0}))) == {"x": 0}
    assert "optional int64 x = 1;" in proto_text(echo_service(int, default=10))
    assert "  int64 x = 1;" in proto_text(echo_service(int))


def test_an_enum_number_naming_no_member_is_a_bad_argument() -> None:
    method = proto_schema(echo_service(Colour)).methods["Echo"]
    unspecified = method.request_class(x=0)  # COLOUR_UNSPECIFIED
    with pytest.raises(BadArguments, match=r"argument 'x'.*Invalid enum value 0"):
        method.decode_args(wire(unspecified))


def test_a_missing_message_argument_is_a_bad_argument() -> None:
    method = proto_schema(echo_service(Point)).methods["Echo"]
    with pytest.raises(BadArguments, match="argument 'x' is missing"):
        method.decode_args(method.request_class())


def test_a_value_of_the_wrong_type_is_refused_with_its_path() -> None:
    method = proto_schema(echo_service(list[Point])).methods["Echo"]
    with pytest.raises(BadArguments, match=r"x\[1\]: expected Point, got str"):
        method.encode_args({"x": [Point(1.0, 1.0), "nope"]})
    with pytest.raises(BadArguments, match="does not fit in int64"):
        proto_schema(echo_service(int)).methods["Echo"].encode_result(2**64)
    with pytest.raises(BadArguments, match="expected int, got bool"):
        proto_schema(echo_service(int)).methods["Echo"].encode_result(True)


class Mode(enum.Enum):
    FAST = "fast"


class Flags(enum.Flag):
    A = 1


@pytest.mark.parametrize(
    ("annotation", "named"),
    [
        (datetime, "datetime"),
        (int | str, "unions other than"),
        (tuple[int, str], "tuple[int, str]"),
        (dict[float, int], "map keys must be str or int"),
        (Mode, "enum Mode must have int values"),
        (Flags, "flag enum Flags"),
        (Any, "typing.Any"),
        (Literal["a", 1], "Literal"),  # one of str or int values is mapped
        (list[datetime], "datetime"),
    ],
)
def test_unsupported_types_are_refused_naming_method_parameter_and_type(
    annotation: Any, named: str
) -> None:
    interface = echo_service(annotation)
    with pytest.raises(LocalProtocolError) as raised:
        proto_schema(interface)
    message = str(raised.value)
    assert ".echo: parameter 'x'" in message
    assert named in message


def test_two_types_with_one_name_are_refused() -> None:
    other_point = dataclasses.make_dataclass("Point", [("z", int)])  # not the module's Point
    both = dataclasses.make_dataclass("Both", [("mine", other_point), ("theirs", Point)])
    assert proto_schema(echo_service(list[other_point]))  # one Point is fine
    with pytest.raises(LocalProtocolError, match="two proto types would be named 'Point'"):
        proto_schema(echo_service(both))


def test_method_names_that_clash_in_camel_case_are_refused() -> None:
    @service(name="clash.v1.Clash")
    class Clash:
        async def get_item(self) -> int: ...

        async def getItem(self) -> int: ...

    with pytest.raises(LocalProtocolError, match="'GetItem'"):
        proto_schema(Clash)


@service(name="everything.v1.Everything")
class Everything:
    async def put(
        self,
        tagged: Tagged,
        tree: Tree,
        pair: Pair,
        grid: list[list[float]],
        index: dict[int, list[Colour]],
        note: str | None = None,
        limit: int = 10,
    ) -> dict[str, Point | None]: ...

    async def watch(self, prefix: str) -> AsyncIterator[Tagged]: ...

    async def upload(self, name: str, chunks: AsyncIterator[bytes]) -> int: ...

    async def chat(self, lines: AsyncIterator[str]) -> AsyncIterator[list[str]]: ...

    async def forget(self, user: UserId) -> None: ...


def test_output_is_deterministic() -> None:
    first = proto_text(Everything)
    schema = proto_schema(Everything)
    assert schema.proto_text() == first
    # A schema built afresh (not the cached one) renders the same bytes.
    assert proto_module._build(describe_service(Everything)).proto_text() == first
    assert "rpc Chat(stream ChatRequest) returns (stream ChatResponse);" in first
    assert "rpc Upload(stream UploadRequest) returns (UploadResponse);" in first
    assert "rpc Watch(WatchRequest) returns (stream WatchResponse);" in first
    assert "map<int64, ColourList> index = 5;" in first
    assert "repeated DoubleList grid = 4;" in first


def _protoc_descriptor(tmp_path: Path, text: str) -> Any:
    source = tmp_path / "everything.proto"
    source.write_text(text)
    out = tmp_path / "set.bin"
    code = protoc.main(["protoc", f"-I{tmp_path}", f"--descriptor_set_out={out}", str(source)])
    assert code == 0, "protoc rejected the generated .proto"
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (parsed,) = files.file
    return parsed


def _without_json_names(file: Any) -> Any:
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)

    def strip(message: Any) -> None:
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)

    for message in copy.message_type:
        strip(message)
    copy.ClearField("name")
    return copy


def test_protoc_reads_the_text_into_the_runtime_descriptor(tmp_path: Path) -> None:
    schema = proto_schema(Everything)
    parsed = _protoc_descriptor(tmp_path, schema.proto_text())
    assert str(_without_json_names(parsed)) == str(_without_json_names(schema.file))


def test_client_stream_messages_carry_arguments_first_then_items() -> None:
    method = proto_schema(Everything).methods["Upload"]
    assert method.header_first
    header = wire(method.encode_args({"name": "f"}))
    assert method.decode_args(header) == {"name": "f"}
    assert method.decode_item(wire(method.encode_item(b"abc"))) == b"abc"
    chat = proto_schema(Everything).methods["Chat"]
    assert not chat.header_first
    assert chat.decode_result(wire(chat.encode_result(["a", "b"]))) == ["a", "b"]

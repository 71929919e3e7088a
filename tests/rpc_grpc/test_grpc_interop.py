"""The issue's interop check, with real processes: `tejido rpc proto` writes the example's
.proto, grpcio-tools generates Python code from it, the example serves over gRPC in its own
process, and a client that imports nothing but grpcio and the generated modules calls it:
a unary call with a message argument, a server stream, a client stream, declared errors
(status code, details, trailing metadata), a bad argument, a deadline, and health. The same
server process serves the same implementation over tejido RPC (one `rpc.serve(...,
grpc=...)` call): a tejido client sees what the gRPC client added."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTUP_S = 30.0

pytestmark = pytest.mark.integration

# gRPC's standard health schema (grpc/src/proto/grpc/health/v1/health.proto), written out
# so the client can call the server's health service with generated code too.
HEALTH_PROTO = """\
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
"""

# Runs in its own process: grpcio and the generated modules only, nothing from tejido.
CLIENT = """\
import json, sys
import grpc
import health_pb2, health_pb2_grpc
import shop_pb2 as pb, shop_pb2_grpc

T = 10.0  # no call may hang the test

def failure(call):
    try:
        call()
    except grpc.RpcError as error:
        return [error.code().name, error.details(), dict(error.trailing_metadata() or ())]
    return None

out = {}
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as channel:
    shop = shop_pb2_grpc.ShopStub(channel)
    dune = pb.Item(sku="b1", title="Dune", price_cents=1299, tags=["sf", "classic"])
    go = pb.Item(sku="g1", title="Go", price_cents=900, category=pb.CATEGORY_GAME)
    out["add"] = [shop.AddItem(pb.AddItemRequest(item=i), timeout=T).value for i in (dune, go)]
    got = shop.GetItem(pb.GetItemRequest(sku="b1"), timeout=T).value
    category = pb.Category.Name(got.category)
    out["get"] = [got.sku, got.title, got.price_cents, category, list(got.tags)]
    out["list"] = [r.value.sku for r in shop.ListItems(pb.ListItemsRequest(), timeout=T)]
    cheap = pb.ListItemsRequest(max_price_cents=1000)
    out["list_cheap"] = [r.value.sku for r in shop.ListItems(cheap, timeout=T)]
    skus = iter([pb.TotalPriceRequest(skus=s) for s in ("b1", "g1", "b1")])
    out["total"] = shop.TotalPrice(skus, timeout=T).value
    out["not_found"] = failure(lambda: shop.GetItem(pb.GetItemRequest(sku="x"), timeout=T))
    reserve = pb.ReserveRequest(sku="g1")
    out["first_reserve"] = failure(lambda: shop.Reserve(reserve, timeout=T))
    out["sold_out"] = failure(lambda: shop.Reserve(reserve, timeout=T))
    odd = pb.Item(sku="u", title="U", price_cents=1, category=pb.CATEGORY_UNSPECIFIED)
    out["bad_enum"] = failure(lambda: shop.AddItem(pb.AddItemRequest(item=odd), timeout=T))
    out["no_item"] = failure(lambda: shop.AddItem(pb.AddItemRequest(), timeout=T))
    wait = pb.WaitForItemRequest(sku="z")
    out["deadline"] = failure(lambda: shop.WaitForItem(wait, timeout=0.3))
    out["still_serving"] = shop.GetItem(pb.GetItemRequest(sku="g1"), timeout=T).value.title
    health = health_pb2_grpc.HealthStub(channel)
    ask = health_pb2.HealthCheckRequest(service="shop.v1.Shop")
    status = health.Check(ask, timeout=T).status
    out["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
print(json.dumps(out))
"""


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# Runs in its own process (from the repository, to import the example's interface).
TEJIDO_CLIENT = """\
import asyncio, sys
import tejido.rpc as rpc
from examples.rpc.grpc_interop import Shop

async def main():
    async with await rpc.connect(Shop, f"127.0.0.1:{sys.argv[1]}", timeout=10.0) as shop:
        print((await shop.get_item("b1")).title)

asyncio.run(main())
"""


def read_ports(server: subprocess.Popen[str], prefixes: list[str]) -> list[int]:
    """The ports on the server's first lines, waiting on the pipe (not on a timer).

    Reads the pipe's descriptor directly: a buffered reader could hold the second line
    while `select` waits for more.
    """
    assert server.stdout is not None
    fd = server.stdout.fileno()
    received = b""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        lines = received.decode().split("\n")[:-1]  # the complete ones
        if len(lines) >= len(prefixes):
            for line, prefix in zip(lines, prefixes, strict=False):
                assert line.startswith(prefix), f"unexpected line {line!r}"
            return [int(line.split()[-1]) for line in lines[: len(prefixes)]]
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:  # it exited: show why
                server.wait(timeout=30)
                stderr = server.stderr.read() if server.stderr else ""
                raise AssertionError(f"the server exited ({server.returncode}):\n{stderr}")
            received += chunk
    raise AssertionError(f"the server printed no ports within {STARTUP_S} s: {received!r}")


def test_a_plain_grpcio_client_calls_a_tejido_service(tmp_path: Path) -> None:
    proto = tmp_path / "shop.proto"
    run(
        [str(BIN / "tejido"), "rpc", "proto", "examples.rpc.grpc_interop:Shop", "-o", str(proto)],
        REPO,
    )
    (tmp_path / "health.proto").write_text(HEALTH_PROTO)
    for name in ("shop.proto", "health.proto"):
        run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{tmp_path}",
                f"--python_out={tmp_path}",
                f"--grpc_python_out={tmp_path}",
                name,
            ],
            tmp_path,
        )
    assert (tmp_path / "shop_pb2_grpc.py").exists()
    (tmp_path / "client.py").write_text(CLIENT)
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.rpc.grpc_interop", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port, rpc_port = read_ports(server, ["listening on ", "tejido rpc on "])
        client_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = json.loads(run([sys.executable, "client.py", str(port)], tmp_path, client_env))
        seen = run([sys.executable, "-c", TEJIDO_CLIENT, str(rpc_port)], REPO)
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    assert server.returncode == 0, errors  # SIGTERM stops it cleanly
    assert out["add"] == [1, 2]
    assert out["get"] == ["b1", "Dune", 1299, "CATEGORY_BOOK", ["sf", "classic"]]
    assert out["list"] == ["g1", "b1"]  # cheapest first
    assert out["list_cheap"] == ["g1"]
    assert out["total"] == 1299 + 900 + 1299
    assert out["not_found"] == [
        "NOT_FOUND",
        "NotFound: no item 'x'",
        {"tejido-error-type": "NotFound"},
    ]
    assert out["first_reserve"] is None
    assert out["sold_out"] == [
        "FAILED_PRECONDITION",
        "SoldOut: 'g1' is already reserved",
        {"tejido-error-type": "SoldOut"},
    ]
    assert out["bad_enum"][0] == "INVALID_ARGUMENT"
    assert "Invalid enum value 0" in out["bad_enum"][1]
    assert out["no_item"][0] == "INVALID_ARGUMENT"
    assert "argument 'item' is missing" in out["no_item"][1]
    assert out["deadline"][0] == "DEADLINE_EXCEEDED"
    assert out["still_serving"] == "Go"
    assert out["health"] == "SERVING"
    assert seen == "Dune\n"  # added over gRPC, read over tejido RPC: one implementation
    assert "Traceback" not in errors, errors


def test_the_proto_file_is_byte_identical_across_processes(tmp_path: Path) -> None:
    target = "examples.rpc.grpc_interop:Shop"
    written = tmp_path / "shop.proto"
    env1 = {**os.environ, "PYTHONHASHSEED": "1"}
    env2 = {**os.environ, "PYTHONHASHSEED": "2"}
    run([str(BIN / "tejido"), "rpc", "proto", target, "-o", str(written)], REPO, env1)
    printed = run([str(BIN / "tejido"), "rpc", "proto", target], REPO, env2)
    assert written.read_text() == printed
    assert "service Shop {" in printed

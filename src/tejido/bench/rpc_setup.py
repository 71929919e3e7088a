"""What the RPC benchmark's client and server processes agree on.

The benchmark (`tejido.bench.rpc`) starts one server process per system
(`tejido.bench.rpc_server`) and one client process per measured run
(`tejido.bench.rpc_client`). Both sides take their names, the payload, the method each
system exposes and the CPU placement from here, so the two processes cannot disagree:

- every call carries the same `PAYLOAD_BYTES`-byte argument and returns it unchanged;
- the bare echo frames it as a 4-byte big-endian length and the payload (the framing
  `tejido.net.frames` uses);
- a placement pins the server to one CPU set and the client to another, the same for every
  system (on a 2-core machine where the two processes land changes sequential numbers
  about 3x, so numbers are compared only under one placement).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ANCHORS",
    "ECHO",
    "ECHO_AWAIT",
    "GRPC_METHOD",
    "GRPC_SERVICE",
    "GRPCIO",
    "IN_FLIGHT",
    "OUTSTANDING",
    "PAYLOAD",
    "PAYLOAD_BYTES",
    "PLACEMENTS",
    "PYRO5",
    "PYRO_OBJECT",
    "PYRO_SERIALIZER",
    "SEQUENTIAL",
    "SYSTEMS",
    "TEJIDO",
    "WORKLOADS",
    "Placement",
    "parse_ready_line",
    "pin_to",
    "placement_named",
    "ready_line",
]

ECHO: Final = "asyncio-echo"
#: The bare echo again, its client a coroutine awaiting one future per call: the floor
#: under any awaitable RPC API.
ECHO_AWAIT: Final = "asyncio-echo-await"
TEJIDO: Final = "tejido"
GRPCIO: Final = "grpcio"
PYRO5: Final = "pyro5"
#: Every system, in the order the table lists them.
SYSTEMS: Final = (ECHO, ECHO_AWAIT, TEJIDO, GRPCIO, PYRO5)
#: The ``--against`` spellings and the system each one names.
ANCHORS: Final = {"grpc": GRPCIO, "grpcio": GRPCIO, "pyro5": PYRO5, "pyro": PYRO5}

SEQUENTIAL: Final = "sequential"
IN_FLIGHT: Final = "64 in flight"
WORKLOADS: Final = (SEQUENTIAL, IN_FLIGHT)
#: Calls kept outstanding by each workload.
OUTSTANDING: Final = {SEQUENTIAL: 1, IN_FLIGHT: 64}

PAYLOAD_BYTES: Final = 100
#: The argument of every call (and so its result): printable, so every serializer carries
#: it as plain bytes.
PAYLOAD: Final = (b"tejido-bench-" * 10)[:PAYLOAD_BYTES]

GRPC_SERVICE: Final = "tejido.bench.Echo"
GRPC_METHOD: Final = f"/{GRPC_SERVICE}/Echo"
PYRO_OBJECT: Final = "tejido.bench.echo"
#: Pyro5's fastest bundled serializer; it carries bytes as bytes (serpent base64-encodes them).
PYRO_SERIALIZER: Final = "marshal"

_READY = "READY"


def ready_line(port: int) -> str:
    """The line a server prints once it accepts connections."""
    return f"{_READY} {port}"


def parse_ready_line(line: str) -> int | None:
    """The port in a `ready_line`, or None when `line` is something else."""
    word, _, port = line.strip().partition(" ")
    if word != _READY or not port.isdigit():
        return None
    return int(port)


@dataclass(frozen=True)
class Placement:
    """Which CPUs the server and the client processes may run on (empty: not pinned)."""

    name: str
    server_cpus: frozenset[int]
    client_cpus: frozenset[int]

    def describe(self) -> str:
        def cpus(which: frozenset[int]) -> str:
            if not which:
                return "unpinned"
            return "CPU " + ",".join(str(c) for c in sorted(which))

        return (
            f"placement {self.name}: server {cpus(self.server_cpus)}, "
            f"client {cpus(self.client_cpus)}"
        )


#: ``split``: server and client on different cores (the default, and the anchors' setup);
#: ``shared``: both on core 0 (they take turns); ``none``: the OS decides.
PLACEMENTS: Final = {
    "split": Placement("split", frozenset({1}), frozenset({0})),
    "shared": Placement("shared", frozenset({0}), frozenset({0})),
    "none": Placement("none", frozenset(), frozenset()),
}


def placement_named(name: str) -> Placement:
    """The placement called `name`, checked against the CPUs this process may use."""
    try:
        placement = PLACEMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown placement {name!r}; choose one of {', '.join(PLACEMENTS)}"
        ) from None
    wanted = placement.server_cpus | placement.client_cpus
    if wanted:
        if not hasattr(os, "sched_getaffinity"):
            raise ValueError(f"placement {name!r} pins CPUs, which this OS does not support")
        available = os.sched_getaffinity(0)
        missing = wanted - available
        if missing:
            raise ValueError(
                f"placement {name!r} needs CPUs {sorted(wanted)} but this process may use only "
                f"{sorted(available)}; use --placement none"
            )
    return placement


def pin_to(cpus: frozenset[int]) -> None:
    """Restrict the calling process to `cpus` (nothing when empty)."""
    if cpus:
        os.sched_setaffinity(0, cpus)

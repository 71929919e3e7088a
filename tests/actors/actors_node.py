"""A peer actor-system node in its own OS process, for the two-process tests.

``python tests/actors/actors_node.py NAME [SEED] [--timeout S]`` starts a cluster node
``NAME`` of the actor system ``test`` on an ephemeral port, registers every behaviour and
message type of the actor test modules (so that other nodes can spawn them here by name),
prints ``READY HOST:PORT`` and runs until its standard input closes (the test that started
it exits or closes the pipe) or it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
#: the modules whose actors and messages a peer may be asked to host
MODULES = ("actors_fixtures", "test_actors_messaging", "test_actors_lifecycle")


def register_all(system: object) -> None:
    """Register the test modules' behaviours and message types on `system`."""
    from tejido.actors import ActorSystem

    assert isinstance(system, ActorSystem)
    for name in MODULES:
        system.types.register_module(importlib.import_module(name))


async def main(name: str, seed: str | None, timeout_s: float) -> None:
    from tejido.actors import ActorSystem
    from tejido.actors.cluster import ClusterConfig

    config = ClusterConfig(
        node=name,
        seeds=(seed,) if seed else (),
        heartbeat_s=min(0.1, timeout_s / 4),
        failure_timeout_s=timeout_s,
    )
    async with ActorSystem("test", cluster=config) as system:
        register_all(system)
        print(f"READY {system.cluster.address}", flush=True)
        loop = asyncio.get_running_loop()
        # returns when the parent closes our stdin (or dies)
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("seed", nargs="?")
    parser.add_argument("--timeout", type=float, default=3.0)
    options = parser.parse_args()
    from tejido.rpc.loop import run

    run(main(options.name, options.seed, options.timeout))

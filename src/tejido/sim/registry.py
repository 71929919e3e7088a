"""The protocols `tejido sim` can run, each with its workload and the checks that judge it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from tejido.core.errors import BadInput, InvariantViolation
from tejido.core.protocol import Env, Process
from tejido.protocols.register import RegisterConfig, RegisterReplica, Timestamp
from tejido.protocols.relay import Relay
from tejido.raft.config import RaftConfig
from tejido.raft.invariants import SafetyHistory
from tejido.raft.node import RaftNode
from tejido.sim.clients import KeyValueWorkload
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = ["REGISTRY", "Invariant", "ProtocolSpec", "get_protocol"]


class UniqueTimestamps(Invariant):
    """ABD safety: one timestamp never names two different values, on any replica, ever."""

    name = "unique-timestamps"

    def __init__(self) -> None:
        self.seen: dict[tuple[str, Timestamp], object] = {}

    def check(self, sim: Simulator) -> None:
        for node, process in sim.processes().items():
            if not isinstance(process, RegisterReplica):
                continue
            for key, (ts, value) in process.data.items():
                known = self.seen.setdefault((key, ts), value)
                if known != value:
                    raise InvariantViolation(
                        self.name,
                        f"node {node} holds {key}@{ts}={value!r}, elsewhere {known!r}",
                    )


class RaftSafety(Invariant):
    """Raft's safety properties (election safety, log matching, leader completeness, state
    machine safety, committed entries durable on a quorum), after every event."""

    name = "raft-safety"

    def __init__(self, config: RaftConfig) -> None:
        self.config = config
        self.history = SafetyHistory()

    def check(self, sim: Simulator) -> None:
        self.history.check_processes(sim.processes(), sim.durable, self.config)


RAFT_CONFIG = RaftConfig()
RAFT_LEASE_CONFIG = RaftConfig(lease_reads=True)


def _register(config: RegisterConfig) -> Callable[[Env], Process]:
    return lambda env: RegisterReplica(env, config)


def _register_spec(
    name: str, summary: str, config: RegisterConfig, keys: tuple[str, ...], broken: bool = False
) -> ProtocolSpec:
    return ProtocolSpec(
        name=name,
        summary=summary,
        factory=_register(config),
        workload=lambda: KeyValueWorkload(keys=keys, functions=("read", "write")),
        invariants=lambda: [UniqueTimestamps()],
        linearizable=True,
        broken=broken,
    )


def _raft_spec(name: str, summary: str, config: RaftConfig) -> ProtocolSpec:
    return ProtocolSpec(
        name=name,
        summary=summary,
        factory=lambda env: RaftNode(env, config),
        workload=lambda: KeyValueWorkload(keys=("x", "y", "z"), functions=("read", "write", "cas")),
        invariants=lambda: [RaftSafety(config)],
        linearizable=True,
    )


REGISTRY: dict[str, ProtocolSpec] = {
    spec.name: spec
    for spec in (
        _register_spec(
            "register",
            "linearizable replicated register over majority quorums (ABD)",
            RegisterConfig(),
            keys=("x", "y", "z"),
        ),
        _raft_spec(
            "raft", "Raft consensus with a key-value state machine (read, write, cas)", RAFT_CONFIG
        ),
        ProtocolSpec(
            name="relay",
            summary="tokens hop between random nodes (measures the simulator itself)",
            factory=lambda env: Relay(env),
            liveness=False,
            min_nodes=2,
        ),
        _register_spec(
            "register-no-writeback",
            "BROKEN on purpose: ABD reads skip the write-back phase",
            RegisterConfig(write_back=False),
            keys=("x",),
            broken=True,
        ),
        _register_spec(
            "register-local-reads",
            "BROKEN on purpose: reads answer from the coordinator's own replica",
            RegisterConfig(local_reads=True),
            keys=("x",),
            broken=True,
        ),
        _raft_spec(
            "raft-lease",
            "Raft key-value store serving reads from a leader lease",
            RAFT_LEASE_CONFIG,
        ),
    )
}


def _discover() -> None:
    """Merge ``SPECS`` from every module of `tejido.sim.specs`, in module-name order."""
    import tejido.sim.specs as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for spec in getattr(module, "SPECS", ()):
            if spec.name in REGISTRY:
                raise InvariantViolation(
                    "unique-protocol-names", f"{spec.name!r} is registered twice"
                )
            REGISTRY[spec.name] = spec


_discover()


def get_protocol(name: str) -> ProtocolSpec:
    spec = REGISTRY.get(name)
    if spec is None:
        known = ", ".join(sorted(n for n, s in REGISTRY.items() if not s.broken))
        raise BadInput(f"unknown protocol {name!r}; available: {known} (see `tejido sim --list`)")
    return spec

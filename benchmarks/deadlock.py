"""Deadlock handling compared in the simulator: ``python benchmarks/deadlock.py``.

Chandy-Misra-Haas detection vs wait-die vs wound-wait on the same contended workload (the
same seeds, so the same client arrivals and transaction lock orders): committed
transactions per virtual second, the abort rate among decided transactions, and the
messages per commit. Fault-free runs (the policies are compared, not the faults).

Options: ``--seeds N`` (default 10), ``--clients C`` (default 6), ``--locks L`` (4),
``--nodes N`` (3), ``--time S`` virtual seconds per run (10).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from tejido.algorithms.deadlock import DeadlockConfig, LockNode, Policy
from tejido.sim.runner import run_seed
from tejido.sim.specs.deadlock import SPECS, TransactionWorkload

POLICIES: tuple[tuple[str, Policy], ...] = (
    ("detection (Chandy-Misra-Haas)", "detect"),
    ("wait-die", "wait-die"),
    ("wound-wait", "wound-wait"),
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--locks", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--time", type=float, default=10.0)
    args = parser.parse_args(argv)
    base = next(s for s in SPECS if s.name == "chandy-misra-haas")
    print(
        f"{args.nodes} nodes, {args.locks} locks, {args.clients} clients, transactions of "
        f"2-3 locks in random order, {args.seeds} seeds x {args.time:g} s virtual, no faults\n"
    )
    print("| policy | committed/s | abort rate | messages/commit | invariant checks |")
    print("|---|---|---|---|---|")
    for label, policy in POLICIES:
        config = DeadlockConfig(policy=policy, max_active=args.clients)  # never "busy"
        spec = dataclasses.replace(
            base,
            factory=lambda env, config=config: LockNode(env, config),
            workload=lambda: TransactionWorkload(locks=args.locks),
        )
        ok = fail = sent = 0
        violations = 0
        for seed in range(1, args.seeds + 1):
            result = run_seed(
                spec, seed, nodes=args.nodes, duration_s=args.time, clients=args.clients
            )
            violations += result.violation is not None
            ok += sum(1 for e in result.history if e["type"] == "ok")
            fail += sum(1 for e in result.history if e["type"] == "fail")
            sent += result.sent
        rate = ok / (args.seeds * args.time)
        aborts = fail / max(1, ok + fail)
        print(
            f"| {label} | {rate:.1f} | {aborts:.1%} | {sent / max(1, ok):.1f} | "
            f"{'pass' if not violations else f'{violations} FAILED'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A nemesis for real store processes: faults under load, then the history is judged.

`NemesisRun` (`tejido.store.nemesis_run`) starts a cluster of `tejido node start`
processes on loopback, drives a read / write / cas load on a few keys from several client
*processes* (`tejido.store.nemesis_load`), and the scenarios here inject faults; then
every process's history is merged and judged:

1. **Linearizable**: `tejido.check.check_linearizable` (one register per key, a failed
   cas kept as the observation that the comparison did not hold). Operations whose
   outcome is unknown are recorded ``info`` and may take effect at any moment after their
   invocation, or never (the history format's rule).
2. **No acknowledged write lost**: after the faults heal and the load stops, every key is
   read (linearizably; these reads are part of the history) and must hold the value of
   an acknowledged write that no later acknowledged write followed, or of a write whose
   outcome is unknown; every member, once it has applied the leader's commit index, must
   then hold the same values (read locally, serializable).

Scenarios (the ones issue 5 asks for; Jepsen's kill and pause nemeses,
jepsen.io/analyses, do the same to etcd):

- `kill_scenario`: kill -9 the leader under load; once a write succeeds through the
  client, kill -9 a follower (the cluster is then without a quorum), restart the old
  leader from its data directory, then the follower.
- `pause_scenario`: SIGSTOP the leader past the election timeout; the others elect a new
  leader and take a write on every key; reads are sent straight to the paused old leader
  (linearizable, over a connection opened before the pause), then it gets SIGCONT. A
  read it answers after resuming must not be stale.

- `mixed_scenario` (soak only): a seeded sequence of such faults, one member at a time,
  each healed (restart or SIGCONT) before the next.

``python -m tejido.store.nemesis soak --rounds N`` runs kill, pause, pause with lease
reads and mixed (lease reads every other round) N times with longer load phases
(``make soak``); ``worker`` is the entry point of a load process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from tejido import rpc
from tejido.mvcc import api
from tejido.store.client import Client
from tejido.store.errors import NotApplied, OutcomeUnknown
from tejido.store.nemesis_load import PROCESSES_PER_CLIENT, WorkerSpec, decode_value, run_worker
from tejido.store.nemesis_run import NemesisReport, NemesisRun, lost_writes, until
from tejido.store.service import KV

__all__ = [
    "NemesisReport",
    "NemesisRun",
    "kill_scenario",
    "lost_writes",
    "mixed_scenario",
    "pause_scenario",
    "run_scenario",
]


# ---------------------------------------------------------------------- scenarios
async def kill_scenario(run: NemesisRun, load_ops: int = 40) -> NemesisReport:
    """kill -9 the leader, then a follower (no quorum), restart both (module docstring)."""
    report = NemesisReport("kill", run.directory)
    await run.start()
    writer = run.harness_client()
    run.start_load()
    await run.progress(load_ops)
    old_leader = await run.leader()
    killed_at = time.monotonic()
    run.kill(old_leader)
    if not await writer.write(run.keys[0]):
        report.problems.append("no write succeeded after the leader was killed")
    report.notes["first write after leader kill s"] = round(time.monotonic() - killed_at, 3)
    new_leader = await run.leader(exclude={old_leader})
    await run.progress(load_ops)
    follower = next(m.id for m in run.local.members if m.id not in (old_leader, new_leader))
    run.kill(follower)
    await run.restart(old_leader)
    if not await writer.write(run.keys[-1]):
        report.problems.append("no write succeeded once the old leader was back")
    await run.progress(load_ops)
    await run.restart(follower)
    await run.progress(load_ops)
    await run.stop_load()
    report.notes["killed"] = [old_leader, follower]
    await run.final_check(report)
    return report


async def pause_scenario(
    run: NemesisRun, load_ops: int = 40, direct_reads: int = 5
) -> NemesisReport:
    """SIGSTOP the leader past the election timeout, write elsewhere, read from the old
    leader across its SIGCONT (module docstring)."""
    report = NemesisReport("pause" + (" (lease reads)" if run.lease_reads else ""), run.directory)
    await run.start()
    run.start_load()
    await run.progress(load_ops)
    old = await run.leader()
    address = run.member(old).client
    stubs = [await rpc.connect(KV, address, cluster=run.local.cluster) for _ in run.keys]
    try:
        run.pause(old)
        new = await run.leader(exclude={old}, not_=old)
        others = [m.client for m in run.local.members if m.id != old]
        async with Client(
            others, timeout_s=run.timeout_s * 2, cluster=run.local.cluster
        ) as elsewhere:
            writer = run.harness_client(elsewhere)
            for key in run.keys:  # now the paused leader's copy of every key is stale
                if not await writer.write(key):
                    report.problems.append(
                        f"no write of {key} succeeded while the leader was paused"
                    )
        await run.progress(load_ops)
        readers = [_DirectReader(run, stub, key) for stub, key in zip(stubs, run.keys, strict=True)]
        tasks = [asyncio.create_task(r.read_many(direct_reads)) for r in readers]
        await until(lambda: _all_invoked(readers), 10.0, "the direct reads to be sent")
        run.resume(old)
        answered = sum(await asyncio.gather(*tasks))
        report.notes["paused leader"] = old
        report.notes["new leader"] = new
        report.notes["reads answered by the old leader"] = answered
        await run.progress(load_ops)
        await run.stop_load()
    finally:
        for stub in stubs:
            with contextlib.suppress(Exception):
                await rpc.close(stub)
    await run.final_check(report)
    return report


async def _all_invoked(readers: list[_DirectReader]) -> bool | None:
    await asyncio.sleep(0)
    return True if all(r.invoked for r in readers) else None


class _DirectReader:
    """Linearizable reads sent to one member over one connection, recorded."""

    def __init__(self, run: NemesisRun, stub: KV, key: str) -> None:
        self.recorder = run.recorder
        self.process = run.harness_number() * PROCESSES_PER_CLIENT
        self.stub = stub
        self.key = key
        self.invoked = False

    async def read_many(self, count: int) -> int:
        answered = 0
        for _ in range(count):
            self.recorder.record(self.process, "invoke", "read", self.key, None)
            self.invoked = True
            try:
                with rpc.call_options(timeout=10.0):
                    reply = await self.stub.range(api.RangeRequest(key=self.key.encode()), False)
            except (NotApplied, OutcomeUnknown, rpc.RpcError, OSError) as exc:
                kind = "fail" if isinstance(exc, NotApplied) else "info"
                self.recorder.record(self.process, kind, "read", self.key, None)
                self.process += 1 if kind == "info" else 0
                continue
            kvs = reply.result.kvs
            value = decode_value(kvs[0].value if kvs else None)
            self.recorder.record(self.process, "ok", "read", self.key, value)
            answered += 1
        return answered


async def mixed_scenario(run: NemesisRun, load_ops: int = 40, cycles: int = 6) -> NemesisReport:
    """`cycles` faults drawn from the run's seed, one member at a time: kill -9 or SIGSTOP
    of the leader or of a follower; once the others have a leader and the load has made
    progress, the member is restarted or resumed, and the load makes progress again."""
    report = NemesisReport("mixed" + (" (lease reads)" if run.lease_reads else ""), run.directory)
    rng = random.Random(run.seed)
    faults: list[str] = []
    await run.start()
    run.start_load()
    await run.progress(load_ops)
    for _ in range(cycles):
        leader = await run.leader()
        followers = [m.id for m in run.local.members if m.id != leader]
        target = leader if rng.random() < 0.5 else rng.choice(followers)
        kind = rng.choice(["kill", "pause"])
        faults.append(f"{kind} {target}{' (leader)' if target == leader else ''}")
        if kind == "kill":
            run.kill(target)
        else:
            run.pause(target)
        await run.leader(exclude={target}, not_=target)
        await run.progress(load_ops)
        if kind == "kill":
            await run.restart(target)
        else:
            run.resume(target)
        await run.progress(load_ops)
    await run.stop_load()
    report.notes["faults"] = faults
    await run.final_check(report)
    return report


# ---------------------------------------------------------------------- entry points
async def run_scenario(
    name: str, directory: Path, *, load_ops: int = 40, **options: Any
) -> NemesisReport:
    run = NemesisRun(directory, **options)
    try:
        if name == "kill":
            report = await kill_scenario(run, load_ops)
        elif name == "pause":
            report = await pause_scenario(run, load_ops)
        elif name == "mixed":
            report = await mixed_scenario(run, load_ops)
        else:
            raise ValueError(f"unknown scenario {name!r} (kill, pause or mixed)")
    finally:
        codes = await run.close()
    report.notes["member exit codes"] = codes
    return report


def _soak(rounds: int, root: Path, load_ops: int) -> int:
    failures = 0
    for round_number in range(1, rounds + 1):
        plan = (
            ("kill", False),
            ("pause", False),
            ("pause", True),
            ("mixed", round_number % 2 == 0),
        )
        for name, lease in plan:
            directory = root / f"round{round_number}-{name}{'-lease' if lease else ''}"
            started = time.monotonic()
            try:
                report = asyncio.run(
                    run_scenario(
                        name, directory, load_ops=load_ops, lease_reads=lease, seed=round_number
                    )
                )
                text = report.describe()
                failures += 0 if report.ok else 1
                if report.ok:
                    shutil.rmtree(directory, ignore_errors=True)  # keep only failures
            except Exception as exc:  # a harness failure is a failed round too
                text = f"{name}: ERROR {type(exc).__name__}: {exc} ({directory})"
                failures += 1
            _say(f"round {round_number} {time.monotonic() - started:.1f} s {text}")
    _say(json.dumps({"rounds": rounds, "failures": failures}))
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "worker":
        spec = msgspec.json.decode(argv[1], type=WorkerSpec)
        totals = asyncio.run(run_worker(spec))
        _say(json.dumps(totals))
        return 0
    if argv and argv[0] == "soak":
        import argparse

        parser = argparse.ArgumentParser(prog="python -m tejido.store.nemesis soak")
        parser.add_argument("--rounds", type=int, default=5)
        parser.add_argument("--dir", type=Path, default=None, help="default: a temporary one")
        parser.add_argument("--load-ops", type=int, default=300)
        args = parser.parse_args(argv[1:])
        root = args.dir or Path(tempfile.mkdtemp(prefix="tejido-nemesis-"))
        _say(f"store nemesis soak: {args.rounds} rounds in {root} (failed rounds are kept)")
        return _soak(args.rounds, root, args.load_ops)
    sys.stderr.write(
        "usage: python -m tejido.store.nemesis worker SPEC | soak [--rounds N] [--dir D]\n"
    )
    return 2


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))

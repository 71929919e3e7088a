"""The nemesis harness: member processes, load processes, and the verdict on a run.

`NemesisRun` starts a cluster of `tejido node start` processes on loopback (the layout of
`tejido.store.local`, on ports reserved for the whole run by `tejido.store.ports`, so a
killed member always restarts on its own ports), starts load processes
(`tejido.store.nemesis_load`), kills, pauses, resumes and restarts members, and at the
end judges the merged history (`final_check`):

1. **Linearizable**: `tejido.check.check_linearizable` (one register per key, a failed
   cas kept as the observation that the comparison did not hold). Operations whose
   outcome is unknown are recorded ``info`` and may take effect at any moment after their
   invocation, or never (the history format's rule).
2. **No acknowledged write lost** (`lost_writes`): after the faults heal and the load
   stops, every key is read (linearizably; these reads are part of the history) and must
   hold the value of an acknowledged write that no later acknowledged write followed, or
   of a write whose outcome is unknown.
3. **Replicas agree**: every member, once it has applied the leader's commit index, holds
   those same values (read locally, serializable).

The scenarios that drive it are in `tejido.store.nemesis`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from tejido import rpc
from tejido.check import check_linearizable, pair_operations, read_history
from tejido.check.history import HistoryOp
from tejido.store.client import Client
from tejido.store.errors import NotApplied, OutcomeUnknown
from tejido.store.local import LocalCluster, LocalMember
from tejido.store.nemesis_load import (
    HistoryRecorder,
    LoadClient,
    WorkerSpec,
    decode_value,
    merge_histories,
)
from tejido.store.ports import PortReservation

__all__ = ["NemesisReport", "NemesisRun", "lost_writes", "until"]

HARNESS_CLIENT = 1
"""Logical client numbers below `FIRST_WORKER_CLIENT` belong to the harness."""
FIRST_WORKER_CLIENT = 100


@dataclass
class NemesisReport:
    """What a run found; `problems` is empty when the history passed both checks."""

    scenario: str
    directory: Path
    operations: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.operations.items()))
        verdict = "PASS" if self.ok else "FAIL"
        lines = [f"{self.scenario}: {verdict} ({counts}) history {self.directory}/history.jsonl"]
        lines += [f"  note {k}: {v}" for k, v in self.notes.items()]
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


class NemesisRun:
    """A cluster of member processes, load workers and the harness's own client."""

    def __init__(
        self,
        directory: Path,
        *,
        nodes: int = 3,
        keys: int = 3,
        workers: int = 3,
        clients_per_worker: int = 2,
        election_timeout_s: float = 1.0,
        heartbeat_interval_s: float = 0.1,
        lease_reads: bool = False,
        timeout_s: float = 5.0,
        seed: int = 0,
    ) -> None:
        self.directory = directory
        self.keys = [f"k{i}" for i in range(keys)]
        self.workers = workers
        self.clients_per_worker = clients_per_worker
        self.timeout_s = timeout_s
        self.seed = seed
        self.ports = PortReservation()
        self.local = LocalCluster(
            directory,
            nodes,
            election_timeout_s=election_timeout_s,
            heartbeat_interval_s=heartbeat_interval_s,
            lease_reads=lease_reads,
        )
        self.lease_reads = lease_reads
        self.recorder = HistoryRecorder()
        self.stop_file = directory / "stop-load"
        self._workers: list[subprocess.Popen[bytes]] = []
        self._paused: set[int] = set()
        self._client: Client | None = None
        self._next_harness = HARNESS_CLIENT

    # ------------------------------------------------------------------ members
    def _write_configs(self) -> None:
        nodes = range(1, self.local.nodes + 1)
        self.local.write_configs({i: (self.ports.address(), self.ports.address()) for i in nodes})

    @property
    def endpoints(self) -> list[str]:
        return [m.client for m in self.local.members]

    def member(self, ident: int) -> LocalMember:
        return next(m for m in self.local.members if m.id == ident)

    async def start(self) -> None:
        self._write_configs()
        await asyncio.to_thread(self.local.start, 60.0)
        self._client = Client(
            self.endpoints, timeout_s=self.timeout_s * 2, cluster=self.local.cluster
        )

    async def restart(self, ident: int) -> None:
        member = self.member(ident)
        self.local.start_member(member)
        await asyncio.to_thread(self.local.wait_listening, member, time.monotonic() + 60.0)

    def kill(self, ident: int) -> None:
        self.local.kill(self.member(ident), signal.SIGKILL)

    def pause(self, ident: int) -> None:
        process = self.member(ident).process
        if process is not None:
            process.send_signal(signal.SIGSTOP)
            self._paused.add(ident)

    def resume(self, ident: int) -> None:
        process = self.member(ident).process
        if process is not None and ident in self._paused:
            process.send_signal(signal.SIGCONT)
            self._paused.discard(ident)

    async def statuses(self, exclude: Collection[int] = ()) -> dict[int, Any]:
        """The status of every running member not in `exclude` (those that answer)."""
        client = self._need_client()
        found: dict[int, Any] = {}
        for member in self.local.members:
            if member.id in exclude or member.process is None or member.process.poll() is not None:
                continue
            with contextlib.suppress(
                NotApplied, OutcomeUnknown, rpc.RpcError, OSError, TimeoutError
            ):
                found[member.id] = await asyncio.wait_for(client.status(member.client), 2.0)
        return found

    async def leader(self, exclude: Collection[int] = (), not_: int | None = None) -> int:
        """Wait until the members outside `exclude` agree on one leader other than `not_`."""

        async def agreed() -> int | None:
            seen = await self.statuses(exclude)
            leaders = {s.leader for s in seen.values()}
            if len(seen) >= 1 and len(leaders) == 1:
                leader = leaders.pop()
                if leader is not None and leader != not_ and leader in seen:
                    return int(leader)
            return None

        return int(await until(agreed, 30.0, "the members to agree on a leader"))

    def _need_client(self) -> Client:
        if self._client is None:
            raise RuntimeError("start the run first")
        return self._client

    def harness_number(self) -> int:
        """A fresh logical client number of the harness (below `FIRST_WORKER_CLIENT`);
        its process ids start at ``number * nemesis_load.PROCESSES_PER_CLIENT``."""
        number = self._next_harness
        self._next_harness += 1
        if number >= FIRST_WORKER_CLIENT:
            raise RuntimeError("the harness ran out of client numbers")
        return number

    def harness_client(self, client: Client | None = None) -> LoadClient:
        """A recorded client of the harness itself (process ids below the workers')."""
        number = self.harness_number()
        return LoadClient(
            client or self._need_client(), self.recorder, number, self.keys, random.Random(number)
        )

    # ------------------------------------------------------------------ load
    def start_load(self) -> None:
        self.stop_file.unlink(missing_ok=True)
        for w in range(self.workers):
            spec = WorkerSpec(
                endpoints=self.endpoints,
                keys=self.keys,
                history=str(self.directory / f"worker{w}.jsonl"),
                stop_file=str(self.stop_file),
                first_client=FIRST_WORKER_CLIENT + w * self.clients_per_worker,
                clients=self.clients_per_worker,
                seed=self.seed,
                timeout_s=self.timeout_s,
                cluster=self.local.cluster,
            )
            log = (self.directory / f"worker{w}.log").open("ab")
            self._workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tejido.store.nemesis",
                        "worker",
                        msgspec.json.encode(spec).decode(),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            log.close()

    def acknowledged(self) -> int:
        """Operations the workers completed ``ok`` so far (read from their histories)."""
        total = 0
        for path in self.directory.glob("worker*.jsonl"):
            total += path.read_bytes().count(b'"type":"ok"')
        return total

    async def progress(self, more: int = 20, timeout_s: float = 30.0) -> None:
        """Wait until the workers have completed `more` further operations ``ok``."""
        target = self.acknowledged() + more

        async def reached() -> bool | None:
            for worker in self._workers:
                if worker.poll() is not None:
                    raise RuntimeError(
                        f"a load worker exited early ({worker.returncode}); see its log"
                    )
            return True if self.acknowledged() >= target else None

        await until(reached, timeout_s, f"{more} more acknowledged operations")

    async def stop_load(self) -> None:
        self.stop_file.touch()
        for worker in self._workers:
            code = await asyncio.to_thread(worker.wait, self.timeout_s * 3 + 10)
            if code != 0:
                raise RuntimeError(
                    f"a load worker exited with {code}; see {self.directory}/worker*.log"
                )

    # ------------------------------------------------------------------ checks
    async def final_check(self, report: NemesisReport) -> None:
        """Rules 1 and 2 of the module docstring; fills `report`."""
        for ident in list(self._paused):
            self.resume(ident)
        reader = self.harness_client()
        final: dict[str, object] = {}
        for key in self.keys:
            for _attempt in range(3):
                before = reader.completed.get("ok", 0)
                value = await reader.read(key)
                if reader.completed.get("ok", 0) > before:
                    final[key] = value
                    break
            else:
                report.problems.append(f"final read of {key} failed three times")
        path = self.directory / "history.jsonl"
        merge_histories(sorted(self.directory.glob("worker*.jsonl")), self.recorder.events, path)
        events = read_history(path)
        ops = pair_operations(events)
        for op in ops:
            name = f"{op.f} {op.outcome}"
            report.operations[name] = report.operations.get(name, 0) + 1
        verdict = check_linearizable(events, strict_fail_cas=True)
        if not verdict.linearizable:
            report.problems.append("not linearizable:\n" + verdict.describe())
        report.problems += lost_writes(ops, final)
        await self._replicas_agree(final, report)

    async def _replicas_agree(self, final: dict[str, object], report: NemesisReport) -> None:
        statuses = await self.statuses()
        commit = max((s.commit for s in statuses.values()), default=0)

        async def caught_up() -> bool | None:
            seen = await self.statuses()
            ok = len(seen) == len(self.local.members) and all(
                s.applied >= commit for s in seen.values()
            )
            return True if ok else None

        await until(caught_up, 30.0, f"every member to apply index {commit}")
        for member in self.local.members:
            async with Client(
                [member.client], timeout_s=self.timeout_s, cluster=self.local.cluster
            ) as one:
                for key in final:
                    kv = await one.get(key, serializable=True)
                    local = decode_value(kv.value if kv is not None else None)
                    if local != final[key]:
                        report.problems.append(
                            f"member {member.id} holds {key}={local!r}, the cluster {final[key]!r}"
                        )

    async def close(self) -> dict[int, int | None]:
        with contextlib.suppress(OSError):
            self.stop_file.touch()
        for ident in list(self._paused):
            self.resume(ident)
        for worker in self._workers:
            if worker.poll() is None:
                try:
                    await asyncio.to_thread(worker.wait, self.timeout_s * 3 + 10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        if self._client is not None:
            await self._client.close()
        codes = await asyncio.to_thread(self.local.stop)
        self.ports.close()
        return codes


def lost_writes(ops: list[HistoryOp], final: dict[str, object]) -> list[str]:
    """Rule 2: each key's final value comes from an acknowledged write that no later
    acknowledged write followed in real time, or from a write of unknown outcome."""
    problems = []
    for key, value in final.items():
        writes = [
            o for o in ops if o.key == key and o.f in ("write", "cas") and o.outcome != "fail"
        ]
        acked = [o for o in writes if o.outcome == "ok"]
        if value is None:
            if acked:
                problems.append(
                    f"{key} is absent at the end, though {len(acked)} writes were acknowledged"
                )
            continue
        sources = [o for o in writes if _written(o) == value]
        if not sources:
            problems.append(f"{key} ends as {value!r}, which no write wrote")
            continue
        source = sources[0]
        if source.outcome == "ok" and source.ret is not None:
            later = [o for o in acked if o.call > source.ret]
            if later:
                problems.append(
                    f"{key} ends as {value!r} from {source.describe()}, but the acknowledged "
                    f"{later[-1].describe()} came after it: an acknowledged write was lost"
                )
    return problems


def _written(op: HistoryOp) -> object:
    if op.f == "cas" and isinstance(op.value, (list, tuple)) and len(op.value) == 2:
        return op.value[1]
    return op.value


async def until(condition: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    """Poll `condition` until it returns something other than None; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await condition()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.3g} s waiting for {what}")
        await asyncio.sleep(0.05)  # poll interval of the condition, not a wait for it

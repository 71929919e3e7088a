"""The replicated-store benchmark's load generator processes, started and collected.

`Generators` starts one `tejido.bench.kv_load` process per `Plan`, waits until every one
has connected and printed ``READY`` (within `READY_S`, else the error carries the tail of
the stderr of the one that did not), then gives them all one start instant on their stdin
(`Generators.start`), so that the warm-up and the window begin together in every process
however long each took to start. `Generators.send` writes a further line (the failover
point's kill instant); `Generators.results` closes their stdin and reads each one's
`LoadResult` from the file its plan names (``result_path``). Leaving the context kills
any still running.
"""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Sequence
from types import TracebackType

import msgspec

from tejido.bench.kv_common import Cluster, KvBenchError
from tejido.bench.kv_load import LoadResult, Plan

__all__ = ["READY_S", "Generators", "split_plans"]

#: How long a generator process may take to start and connect.
READY_S = 60.0
#: Between the last READY and the start instant: time to write every start line.
_START_DELAY_S = 0.1


def split_plans(base: Plan, processes: int) -> list[Plan]:
    """`base` with its clients shared out over `processes` plans (client numbers continue)."""
    plans: list[Plan] = []
    first = 0
    for p in range(processes):
        share = base.clients // processes + (1 if p < base.clients % processes else 0)
        plans.append(msgspec.structs.replace(base, clients=share, first_client=first))
        first += share
    return plans


class Generators:
    """The processes running `plans` against `cluster` (a context manager)."""

    def __init__(self, cluster: Cluster, plans: Sequence[Plan]) -> None:
        self.cluster = cluster
        self.processes: list[subprocess.Popen[bytes]] = []
        self._stderr = []
        self._results = [cluster.path / f"result{i}.json" for i in range(len(plans))]
        for i, plan in enumerate(plans):
            plan = msgspec.structs.replace(plan, result_path=str(self._results[i]))
            path = cluster.path / f"plan{i}.json"
            path.write_bytes(msgspec.json.encode(plan))
            stderr = open(cluster.path / f"generator{i}.err", "w+b")  # noqa: SIM115 (close)
            self._stderr.append(stderr)
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tejido.bench.kv_load", str(path)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                )
            )

    def __enter__(self) -> Generators:
        try:
            for i in range(len(self.processes)):
                self._await_ready(i)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _tail(self, i: int) -> str:
        stream = self._stderr[i]
        stream.flush()
        stream.seek(0)
        lines = stream.read().decode(errors="replace").strip().splitlines()
        return "\n".join(lines[-15:]) or "(no output)"

    def _fail(self, i: int, what: str) -> KvBenchError:
        return KvBenchError(f"{self.cluster.system}: load generator {i} {what}:\n{self._tail(i)}")

    def _await_ready(self, i: int) -> None:
        process = self.processes[i]
        assert process.stdout is not None
        deadline = time.monotonic() + READY_S
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(left, 0.0))
            if not ready:
                raise self._fail(i, f"was not ready within {READY_S:g} s")
            line = process.stdout.readline()
            if line == b"READY\n":
                return
            if not line:
                process.wait(timeout=10)
                raise self._fail(i, f"exited with status {process.returncode} before it was ready")

    def start(self) -> float:
        """Give every process the start instant; return it (seconds since the epoch)."""
        start_at = time.time() + _START_DELAY_S
        self.send(f"{start_at!r}")
        return start_at

    def send(self, line: str) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(line.encode() + b"\n")
            process.stdin.flush()

    def results(self, timeout_s: float) -> list[LoadResult]:
        """Each process's result, once all have exited (`timeout_s` in all)."""
        deadline = time.monotonic() + timeout_s
        results: list[LoadResult] = []
        for i, process in enumerate(self.processes):
            try:
                out, _ = process.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:
                raise self._fail(i, f"did not finish within {timeout_s:g} s") from None
            if process.returncode != 0:
                raise self._fail(i, f"failed (status {process.returncode})")
            path = self._results[i]
            data = path.read_bytes() if path.exists() else out.rstrip(b"\n").rpartition(b"\n")[2]
            try:
                results.append(msgspec.json.decode(data, type=LoadResult))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                shown = data[:120] + b" ... " + data[-120:]
                raise self._fail(
                    i, f"gave no readable result ({exc}; {len(data)} bytes: {shown!r})"
                ) from None
        return results

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
        for stream in self._stderr:
            stream.close()

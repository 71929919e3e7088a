"""Five real ``tejido lock`` processes contend for one lock around appends to a shared file
guarded by the fencing token; the first holder is SIGSTOPped past its lease and resumed.
The file must show whole sections (begin then end, one token at a time, tokens growing)
and the resumed holder's late write refused by the fence."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from recipes_fixtures import run_cluster_long

from store.store_fixtures import Cluster, wait_for

WORKER = Path(__file__).with_name("recipes_fence_worker.py")
CONTENDERS = 5
PRINT_TOKEN_AND_EXIT_7 = "import os, sys; print(os.environ['TEJIDO_FENCING_TOKEN']); sys.exit(7)"


def _lines(path: Path) -> list[tuple[int, str, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        token, what, holder = line.split()
        out.append((int(token), what, int(holder)))
    return out


@pytest.mark.integration
def test_stopped_holder_cannot_write_after_its_lease_expired(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    log = shared / "log"
    exits: dict[int, int] = {}

    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        endpoints = ",".join(cluster.endpoints)
        procs = [
            await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "tejido.cli.main", "lock", "jobs"],
                # TTL 2 s, not 1: waiting contenders on a heavily loaded machine must still
                # renew in time; the stopped holder stays stopped until its lease is gone.
                *["--endpoints", endpoints, "--ttl", "2", "--timeout", "20"],
                *["--", sys.executable, str(WORKER), str(shared)],
                start_new_session=True,  # its own process group: the holder and its command
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(CONTENDERS)
        ]
        try:
            await wait_for(lambda: bool(_lines(log)), 60, "the first holder's begin")
            first_token, _, first_holder = _lines(log)[0]
            os.killpg(first_holder, signal.SIGSTOP)  # holder and command, mid-section
            try:
                await wait_for(
                    lambda: any(t != first_token for t, _, _ in _lines(log)),
                    60,
                    "the next holder, after the stopped one's lease expired",
                )
            finally:
                os.killpg(first_holder, signal.SIGCONT)
            for proc in procs:
                await asyncio.wait_for(proc.wait(), 60)
                assert proc.returncode is not None
                exits[proc.pid] = proc.returncode
            exits[-1] = first_holder
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    run_cluster_long(tmp_path / "cluster", body)
    first_holder = exits.pop(-1)
    lines = _lines(log)
    tokens = [t for t, _, _ in lines]
    assert tokens == sorted(tokens), f"a stale token wrote after a newer one: {lines}"
    sections: dict[int, list[str]] = {}
    for token, what, _ in lines:
        sections.setdefault(token, []).append(what)
    assert len(sections) == CONTENDERS
    # No interleaving: a token's lines are contiguous (tokens sorted and each section whole).
    stopped = [t for t, _, h in lines if h == first_holder]
    assert stopped
    assert sections.pop(stopped[0]) == ["begin"], "the stopped holder's late end got in"
    assert all(whats == ["begin", "end"] for whats in sections.values()), sections
    rejected = _lines(shared / "rejected")
    assert rejected == [(stopped[0], "end", first_holder)]
    assert exits.pop(first_holder) == 1  # `tejido lock` noticed the lost lease
    assert sorted(exits.values()) == [0] * (CONTENDERS - 1)


@pytest.mark.integration
def test_semaphore_and_elect_commands(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        options = ["--endpoints", ",".join(cluster.endpoints), "--ttl", "2", "--timeout", "20"]
        tejido = [sys.executable, "-m", "tejido.cli.main"]
        sem = await asyncio.create_subprocess_exec(
            *tejido, "semaphore", "pool", "2", *options, "--",
            sys.executable, "-c", PRINT_TOKEN_AND_EXIT_7,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(sem.communicate(), 60)
        assert sem.returncode == 7  # the command's own exit code
        assert int(out.decode().strip()) > 0  # the fencing token reached it

        bad = await asyncio.create_subprocess_exec(
            *tejido, "semaphore", "pool", "0", *options, "--", "true",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(bad.communicate(), 60)
        assert bad.returncode == 2
        assert b"N >= 1" in err

        elect = await asyncio.create_subprocess_exec(
            *tejido, "elect", "leader", "node-a", *options,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert elect.stdout is not None
        try:
            while True:
                line = await asyncio.wait_for(elect.stdout.readline(), 60)
                assert line, "elect ended without reporting its leadership"
                record = json.loads(line)
                if record["us"]:
                    break
            assert record["leader"] == "node-a"
            assert record["term"] > 0
        finally:
            elect.send_signal(signal.SIGINT)
            await asyncio.wait_for(elect.wait(), 60)

    run_cluster_long(tmp_path / "cluster", body)

"""WalStorage is a drop-in for NodeHost: a journal process answers each append only after
its sync is durable, and a restarted host recovers the journal, compaction included."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered
from tejido.net.host import NodeHost
from tejido.net.wal import WalStorage


class Journal(Process):
    """``append`` (data) and ``compact`` (value = index) answer once durable; ``read`` lists."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.first = 0
        self.records: list[bytes] = []
        self.unanswered: list[tuple[int, RequestId]] = []

    def on_start(self, recovered: Recovered) -> None:
        self.first, self.records = recovered.first_index, list(recovered.records)

    def on_command(self, request: RequestId, operation: Operation) -> None:
        if operation.f == "read":
            self.reply(request, Outcome("ok", self.first, data=b",".join(self.records)))
            return
        if operation.f == "append" and operation.data is not None:
            self.append(operation.data)
            self.records.append(operation.data)
        elif operation.f == "compact" and isinstance(operation.value, int):
            self.compact_log(operation.value)
            del self.records[: operation.value - self.first]
            self.first = operation.value
        self.unanswered.append((self.sync(), request))

    def on_durable(self, token: int) -> None:
        while self.unanswered and self.unanswered[0][0] <= token:
            self.reply(self.unanswered.pop(0)[1], Outcome("ok"))


def _host(directory: Path) -> NodeHost:
    return NodeHost(
        node_id=NodeId(1),
        peers={},
        factory=Journal,
        data_dir=directory,
        cluster="wal",
        storage=lambda d, **kw: WalStorage(d, segment_bytes=200, **kw),
    )


def test_a_host_on_wal_storage_recovers_what_it_acknowledged(tmp_path: Path) -> None:
    async def life(ops: list[Operation]) -> tuple[list[Outcome], Outcome]:
        host = _host(tmp_path)
        await host.start()
        try:
            async with asyncio.timeout(30):  # bounds a hang only
                # One at a time, so the records spread over several segments: commands
                # submitted together reach the journal in one input and the host writes
                # their records as one append, which one segment holds.
                answers = [await host.submit(op) for op in ops]
                read = await host.submit(Operation("read"))
        finally:
            await host.stop()
        return list(answers), read

    writes = [Operation("append", data=b"entry-%02d" % i) for i in range(30)]
    answers, read = asyncio.run(life([*writes, Operation("compact", value=12)]))
    assert [a.type for a in answers] == ["ok"] * 31
    expected = b",".join(b"entry-%02d" % i for i in range(12, 30))
    assert (read.value, read.data) == (12, expected)
    # compaction deleted the segments wholly below index 12, kept the one holding it
    firsts = [int(p.stem.split("-")[1], 16) for p in (tmp_path / "wal").glob("*.wal")]
    assert 0 < min(firsts) <= 12
    _, again = asyncio.run(life([]))
    assert (again.value, again.data) == (12, expected)


def test_commands_submitted_together_are_one_write_and_one_fsync(tmp_path: Path) -> None:
    """net/host rules 1 and 5: a burst reaches the process as one input, and its log
    appends become one storage write (one segment here, though over the 200-byte target)
    covered by one fsync; every command is still answered only once durable."""

    async def life() -> tuple[list[Outcome], int]:
        host = _host(tmp_path)
        await host.start()
        try:
            async with asyncio.timeout(30):  # bounds a hang only
                burst = [Operation("append", data=b"entry-%02d" % i) for i in range(10)]
                answers = await asyncio.gather(*(host.submit(op) for op in burst))
        finally:
            fsyncs = host.storage.fsyncs
            await host.stop()
        return list(answers), fsyncs

    answers, fsyncs = asyncio.run(life())
    assert [a.type for a in answers] == ["ok"] * 10
    assert fsyncs == 1
    assert len(list((tmp_path / "wal").glob("*.wal"))) == 1

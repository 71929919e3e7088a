"""Batched proposals (`RaftNode.propose_batch`), batched apply (`apply_batch`) and the
log's running sizes: the paths the throughput benchmark takes."""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Sequence

import msgspec
import pytest

from tejido.bench.raft import RaftCoreCluster
from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.core.storage import LogAppend
from tejido.raft.config import RaftConfig
from tejido.raft.errors import ProposalRefused
from tejido.raft.kv import KeyValueStateMachine, batch_apply, decode_outcome, encode_operation
from tejido.raft.log import RaftLog
from tejido.raft.messages import AppendEntries, ForwardProposal
from tejido.raft.types import Entry, EntryKind, Index, Term


def writes(count: int, start: int = 0) -> list[bytes]:
    return [
        encode_operation(Operation("write", f"k{i % 5}", f"v{i}"))
        for i in range(start, start + count)
    ]


def chained_digest(entries: Sequence[Entry]) -> bytes:
    digest = b""
    for e in entries:
        hashed = hashlib.blake2b(digest, digest_size=8)
        hashed.update(struct.pack(">QQ", e.term, e.index))
        hashed.update(e.data)
        digest = hashed.digest()
    return digest


def test_a_batch_is_one_append_per_follower_and_commits_in_order() -> None:
    cluster = RaftCoreCluster()
    leader = cluster.leader
    commands = writes(100)
    first = leader.propose_batch(commands)
    assert first == leader.log.last_index - 99
    appends = [(dst, m) for dst, m in leader.out.messages if isinstance(m, AppendEntries)]
    assert sorted(dst for dst, _ in appends) == [2, 3]
    for _, message in appends:
        assert [e.index for e in message.entries] == list(range(first, first + 100))
        assert [e.data for e in message.entries] == commands
    cluster.run()
    for node in cluster.nodes.values():
        log = node.log
        assert log.applied == log.commit == log.last_index == first + 99
        assert [e.data for e in log.entries[-100:]] == commands
        assert [e.index for e in log.entries] == list(range(1, first + 100))
    machines = [node.sm for node in cluster.nodes.values()]
    assert all(isinstance(m, KeyValueStateMachine) for m in machines)
    assert isinstance(machines[0], KeyValueStateMachine)
    assert {m.snapshot() for m in machines} == {machines[0].snapshot()}
    assert machines[0].values == {f"k{i}": f"v{95 + i}" for i in range(5)}  # the last writes
    # The digest computed on demand equals the chain over every applied entry.
    assert {n.applied_digest for n in cluster.nodes.values()} == {
        chained_digest(leader.log.entries)
    }
    cluster.verify()


def test_a_batch_over_the_uncommitted_limit_is_refused_whole() -> None:
    config = RaftConfig(max_uncommitted_bytes=1_000)
    cluster = RaftCoreCluster(config=config)
    leader = cluster.leader
    # Nothing uncommitted: a batch is accepted even beyond the limit (progress stays possible).
    big = writes(40)
    assert sum(len(c) + 16 for c in big) > config.max_uncommitted_bytes
    first = leader.propose_batch(big)
    assert first is not None
    last = leader.log.last_index
    messages = len(leader.out.messages)
    with pytest.raises(ProposalRefused, match="busy"):
        leader.propose_batch(writes(2, start=40))
    with pytest.raises(ProposalRefused, match="busy"):
        leader.propose(writes(1, start=42)[0])
    assert leader.log.last_index == last  # nothing of the refused batches was appended
    assert len(leader.out.messages) == messages
    cluster.run()
    assert leader.uncommitted_bytes == 0
    assert leader.propose_batch(writes(2, start=40)) == last + 1
    cluster.run()
    cluster.verify()


def test_a_follower_forwards_each_command_of_a_batch() -> None:
    cluster = RaftCoreCluster()
    follower = cluster.nodes[NodeId(2)]
    commands = writes(3)
    assert follower.propose_batch(commands) is None
    forwarded = [m for dst, m in follower.out.messages if isinstance(m, ForwardProposal)]
    assert [m.data for m in forwarded] == commands
    cluster.run()
    assert [e.data for e in cluster.leader.log.entries[-3:]] == commands
    cluster.verify()


def test_an_empty_batch_is_a_local_error() -> None:
    cluster = RaftCoreCluster()
    with pytest.raises(LocalProtocolError):
        cluster.leader.propose_batch([])


def random_commands(rng: random.Random, count: int) -> list[bytes]:
    commands = []
    for _ in range(count):
        key = rng.choice(["a", "b", None])
        match rng.randrange(7):
            case 0:
                op = Operation("read", key)
            case 1:
                op = Operation("cas", key, (rng.randrange(3), rng.randrange(3)))
            case 2:
                appended: list[str | int] = ["x", "y", 1]
                op = Operation("append", key, rng.choice(appended))
            case 3:
                commands.append(rng.choice([b"", b"\xff\x00", b"\x93\x01\x02\x03"]))
                continue
            case 4:
                op = Operation("delete", key)
            case _:
                op = Operation("write", key, rng.choice([rng.randrange(3), "s", None]))
        commands.append(encode_operation(op))
    return commands


@pytest.mark.parametrize("seed", range(20))
def test_batched_apply_matches_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    commands = random_commands(rng, 60)
    if seed % 2:  # half of the batches hold only operations (no garbage fallback)
        commands = [c for c in commands if c[:1] == b"\x83"]
    one, quiet, loud = KeyValueStateMachine(), KeyValueStateMachine(), KeyValueStateMachine()
    expected = [one.apply(command) for command in commands]
    position = 0
    while position < len(commands):  # in random ranges, as a node applies committed ranges
        size = rng.randrange(1, 20)
        chunk = commands[position : position + size]
        assert quiet.apply_batch(chunk, False) == []
        assert loud.apply_batch(chunk, True) == expected[position : position + size]
        position += size
    assert quiet.values == loud.values == one.values
    assert quiet.snapshot() == one.snapshot()


def test_a_write_of_a_pair_fails_in_a_batch_as_it_does_alone() -> None:
    bad = msgspec.msgpack.encode(Operation("write", "k", (1, 2)))
    alone, batched = KeyValueStateMachine(), KeyValueStateMachine()
    outcome = decode_outcome(alone.apply(bad))
    assert outcome.type == "fail"
    assert "write takes" in (outcome.error or "")
    assert alone.values == {}
    results = batched.apply_batch([writes(1)[0], bad], True)
    assert decode_outcome(results[1]) == outcome
    assert batched.apply_batch([bad, writes(2)[1]], False) == []
    assert batched.values == {"k0": "v0", "k1": "v1"}  # the bad write changed nothing


class OneByOne:
    """A state machine without `apply_batch`: the node falls back to `apply`."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def apply(self, command: bytes) -> bytes:
        self.seen.append(command)
        return command[::-1]

    def read(self, query: bytes) -> bytes:
        return b""

    def snapshot(self) -> bytes:
        return b"".join(self.seen)

    def restore(self, data: bytes) -> None:
        self.seen = []


def test_a_state_machine_without_apply_batch_is_applied_one_by_one() -> None:
    machine = OneByOne()
    apply = batch_apply(machine)
    assert apply([b"ab", b"cd"], True) == [b"ba", b"dc"]
    assert apply([b"ef"], False) == []
    assert machine.seen == [b"ab", b"cd", b"ef"]


def test_log_sizes_and_kinds_follow_appends_truncation_and_compaction() -> None:
    rng = random.Random(7)
    log = RaftLog()
    index = 0

    def more(count: int) -> list[Entry]:
        nonlocal index
        kinds = [EntryKind.NORMAL] * 8 + [EntryKind.NOOP, EntryKind.CONFIG]
        batch = [
            Entry(Term(1), Index(index + 1 + k), rng.choice(kinds), b"x" * rng.randrange(40))
            for k in range(count)
        ]
        index += count
        return batch

    def naive(first: int, last: int) -> int:
        return sum(log.entry(i).size_bytes for i in range(first, last + 1))

    log.extend(more(30))
    for _ in range(200):
        action = rng.randrange(5)
        if action == 0:
            log.extend(more(rng.randrange(1, 10)))
        elif action == 1:
            log.append(more(1)[0])
        elif action == 2 and log.last_index > log.commit + 1:
            index = rng.randrange(log.commit + 1, log.last_index)
            log.truncate(index + 1)
        elif action == 3 and log.last_index > log.applied:
            log.commit_to(rng.randrange(log.commit, log.last_index + 1))
            log.applied = log.commit
            if log.applied > log.snapshot_index:
                log.compact(rng.randrange(log.snapshot_index, log.applied + 1))
        first = rng.randrange(log.first_index, log.last_index + 2)
        last = rng.randrange(first - 1, log.last_index + 1)
        assert log.size_between(first, last) == naive(first, last)
        special = [i for i in range(first, last + 1) if log.entry(i).kind is not EntryKind.NORMAL]
        assert log.special_between(first, last) == special
        if first <= log.last_index:
            budget = rng.randrange(200)
            got = log.slice(first, budget)
            assert got
            assert got[0].index == first
            assert len(got) == 1 or naive(first, got[-1].index) <= budget
            assert got[-1].index == log.last_index or naive(first, got[-1].index + 1) > budget


def test_extend_checks_contiguity() -> None:
    log = RaftLog()
    with pytest.raises(LocalProtocolError):
        log.extend([Entry(Term(1), Index(2))])
    with pytest.raises(LocalProtocolError):
        log.extend([Entry(Term(1), Index(1)), Entry(Term(1), Index(3))])


@pytest.mark.parametrize(
    "odd",
    [
        b"\xff\x00",  # garbage
        b"\x83\xa1f\xa5write\xa3key\xa1k",  # a write cut short
        encode_operation(Operation("write", None, "x")),  # the unnamed register
        encode_operation(Operation("cas", "k1", ("v1", "w"))),
        encode_operation(Operation("write", "k", (1, 2))),  # a pair: fails as it does alone
    ],
)
def test_a_range_of_writes_with_one_other_command_applies_as_one_by_one(odd: bytes) -> None:
    """The scalar-write fast path of `apply_batch` gives way to the general path for the
    whole range when any command is not such a write, with the same effect."""
    commands = [*writes(6), odd, *writes(6, start=6)]
    one, batched = KeyValueStateMachine(), KeyValueStateMachine()
    try:
        for command in commands:
            one.apply(command)
        failed = False
    except msgspec.ValidationError:
        failed = True
    if failed:
        with pytest.raises(msgspec.ValidationError):
            batched.apply_batch(commands, False)
    else:
        assert batched.apply_batch(commands, False) == []
    assert batched.values == one.values
    assert batched.snapshot() == one.snapshot()


def test_followers_write_the_records_the_leader_ships_and_they_match_the_entries() -> None:
    """Rule 2c of replication.py: appends carry the leader's storage records in process;
    every node's storage gets exactly the encoding of its log entries, shipped or not."""
    cluster = RaftCoreCluster(seed=3)
    appended: dict[NodeId, list[bytes]] = {n: [] for n in cluster.nodes}
    shipped = 0
    for batch in range(6):
        commands = writes(40, start=40 * batch)
        cluster.leader.propose_batch(commands)
        while True:  # FIFO delivery, the storage of each node collected
            for node in cluster.nodes.values():
                for op in node.out.storage:
                    if isinstance(op, LogAppend):
                        appended[node.node_id].extend(op.records)
                node.out.storage.clear()
                for dst, message in node.out.messages:
                    if isinstance(message, AppendEntries) and message.entries:
                        shipped += "records" in message.__dict__
                        if batch % 2:  # as if it came over a wire: no records attached
                            message = msgspec.msgpack.Decoder(AppendEntries).decode(
                                msgspec.msgpack.encode(message)
                            )
                            assert "records" not in message.__dict__
                    cluster.queue.append((node.node_id, dst, message))
                node.out.messages.clear()
                if node.out.syncs:
                    token = node.out.syncs[-1]
                    node.out.syncs.clear()
                    node.on_durable(token)
            if not cluster.queue:
                break
            while cluster.queue:
                src, dst, message = cluster.queue.popleft()
                cluster.nodes[dst].on_message(src, message)
    cluster.verify()
    assert shipped > 0
    for node in cluster.nodes.values():
        log = node.log
        assert log.last_index == cluster.leader.log.last_index
        tail = appended[node.node_id][-240:]
        assert tail == [msgspec.msgpack.encode(e) for e in log.entries[-240:]]

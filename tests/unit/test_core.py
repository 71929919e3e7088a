"""The pure core's contract: storage rules, message rendering, the process outbox."""

from __future__ import annotations

import random

import pytest

from tejido.core import (
    Command,
    Durable,
    Env,
    LocalProtocolError,
    LogAppend,
    LogCompact,
    LogTruncate,
    Message,
    NodeId,
    Operation,
    Outcome,
    Process,
    Put,
    Receive,
    Recovered,
    RequestId,
    StorageState,
    TimerFired,
    TimerName,
)


class Ping(Message, frozen=True):
    seq: int
    note: str = ""


def env(node: int = 1, nodes: int = 3) -> Env:
    return Env(
        NodeId(node), tuple(NodeId(i) for i in range(1, nodes + 1)), random.Random(1), lambda: 0.0
    )


def test_describe_renders_fields_in_order() -> None:
    assert Ping(3, "hello world").describe() == "Ping seq=3 note='hello world'"
    assert Ping(1).describe() == "Ping seq=1 note=''"


def test_messages_are_frozen() -> None:
    ping = Ping(1)
    with pytest.raises(AttributeError):
        ping.seq = 2  # type: ignore[misc]


def test_storage_state_applies_operations_in_order() -> None:
    s = StorageState()
    s.apply(LogAppend((b"a", b"b", b"c")))
    s.apply(LogTruncate(2))
    s.apply(LogAppend((b"d",)))
    assert s.records == [b"a", b"b", b"d"]
    s.apply(LogCompact(2))
    assert (s.first_index, s.records, s.next_index) == (2, [b"d"], 3)
    s.apply(Put("k", b"v"))
    s.apply(Put("k", None))
    assert s.state == {}
    s.apply(LogCompact(5))  # compacting past the end empties the log
    assert (s.first_index, s.records) == (5, [])


@pytest.mark.parametrize(
    "op",
    [LogTruncate(-1), LogTruncate(4), LogCompact(0)],
    ids=["truncate-before-start", "truncate-past-end", "compact-backwards"],
)
def test_storage_state_refuses_impossible_operations(op: LogTruncate | LogCompact) -> None:
    s = StorageState(Recovered(first_index=1, records=(b"x", b"y")))
    with pytest.raises(LocalProtocolError):
        s.apply(op)


class Echo(Process):
    def on_message(self, src: NodeId, message: Message) -> None:
        assert isinstance(message, Ping)
        self.send(src, Ping(message.seq + 1))
        self.put("last", str(message.seq).encode())
        self.sync()

    def on_timer(self, name: TimerName) -> None:
        self.broadcast(Ping(0))

    def on_command(self, request: RequestId, operation: Operation) -> None:
        self.reply(request, Outcome("ok", operation.value))


def test_step_dispatches_inputs_and_ready_drains_the_outbox() -> None:
    p = Echo(env())
    p.step(Receive(NodeId(2), Ping(7)))
    out = p.ready()
    assert out.messages == [(NodeId(2), Ping(8))]
    assert out.storage == [Put("last", b"7")]
    assert out.syncs == [1]
    assert not p.ready()  # drained
    p.step(TimerFired(TimerName("t")))
    assert [dst for dst, _ in p.ready().messages] == [2, 3]
    p.step(Command(RequestId(5), Operation("write", "k", 9)))
    assert p.ready().replies == [(RequestId(5), Outcome("ok", 9))]
    p.step(Durable(1))  # the default hook accepts it
    assert not p.ready()


def test_sync_tokens_increase_and_negative_timers_are_refused() -> None:
    p = Echo(env())
    assert [p.sync(), p.sync(), p.sync()] == [1, 2, 3]
    with pytest.raises(LocalProtocolError, match="negative delay"):
        p.set_timer("x", -1.0)


def test_a_process_without_handlers_says_so() -> None:
    p = Process(env())
    with pytest.raises(LocalProtocolError, match="does not accept messages"):
        p.step(Receive(NodeId(2), Ping(1)))
    p.step(Command(RequestId(1), Operation("read")))
    (reply,) = p.ready().replies
    assert reply[1].type == "fail"

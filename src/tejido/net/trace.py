"""Tracing real nodes: Lamport and vector clocks on the wire, one trace file per node.

A `TraceRecorder` is the real-runtime counterpart of the simulator's trace (the format of
``docs/formats.md``). The host gives it every peer message it sends and receives, every
event its process reports, every timer that fires and every client command; it writes one
JSON-lines record per happening to the node's trace file, the moment it happens (a node
killed with SIGKILL loses nothing it had recorded). Rules:

1. **Clocks** (Lamport 1978, IR1/IR2; Fidge 1988 and Mattern 1989 for vectors, as in
   `tejido.core.clocks`): the node ticks before each send, each reported event and each
   client command; a message carries the sender's clocks after the tick; a receipt merges
   (Lamport ``max(own, received) + 1``, vectors element-wise maximum, then a tick). Timer
   records carry no stamp (they are inputs, not observable events).
2. **The wire stamp is a wrapper frame**, not a protocol change: the mesh wraps each
   encoded message in a `Stamped` record (sequence number, Lamport time, vector, payload)
   when tracing is on; both ends of a link must agree on it (the launcher starts every
   node with tracing on or every node without).
3. **Message ids are strings unique per run**: ``"n<sender>:<sequence>"``. The sequence
   and the clocks continue across restarts: a recorder that opens an existing trace file
   resumes from the largest values it finds there, so one node's records stay increasing.
4. **Time** is wall-clock seconds since ``start`` (a Unix timestamp the launcher hands to
   every node), so the files of all nodes on one machine merge by ``t``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import msgspec

from tejido.core.ids import NodeId
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation

__all__ = ["Stamped", "TraceRecorder", "message_id"]


class Stamped(msgspec.Struct, array_like=True, frozen=True):
    """The wrapper frame of a traced peer message (rule 2)."""

    seq: int
    lamport: int
    vc: dict[int, int]
    payload: bytes


_stamp_encoder = msgspec.msgpack.Encoder()
_stamp_decoder = msgspec.msgpack.Decoder(Stamped)
_json = msgspec.json.Encoder()


def message_id(sender: int, seq: int) -> str:
    """The trace id of the `seq`-th message `sender` sent (rule 3)."""
    return f"n{sender}:{seq}"


class TraceRecorder:
    """One node's clocks and trace file; see the module docstring for the rules."""

    def __init__(
        self,
        node: NodeId,
        path: str | Path,
        *,
        start: float,
        clock: Callable[[], float] = time.time,
        echo: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        self.node = node
        self.path = Path(path)
        self.start = start
        self.clock = clock
        self.echo = echo
        """Called with every ``event`` record (the launcher prints them as they happen)."""
        self.lamport = 0
        self.vc: dict[int, int] = {}
        self.seq = 0
        self._resume()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = self.path.open("ab", buffering=0)
        if self._file.tell() > 0:
            with self.path.open("rb") as f:
                f.seek(-1, 2)
                if f.read(1) != b"\n":
                    self._file.write(b"\n")  # end a line torn by a kill before appending

    def _resume(self) -> None:
        """Continue the clocks and the sequence of an earlier incarnation (rule 3)."""
        with contextlib.suppress(FileNotFoundError):
            for line in self.path.read_bytes().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line torn by a kill
                if not isinstance(record, dict):
                    continue
                lamport = record.get("lamport")
                if isinstance(lamport, int):
                    self.lamport = max(self.lamport, lamport)
                vc = record.get("vc")
                if isinstance(vc, dict):
                    for key, count in vc.items():
                        self.vc[int(key)] = max(self.vc.get(int(key), 0), int(count))
                if record.get("kind") == "send" and isinstance(record.get("seq"), int):
                    self.seq = max(self.seq, record["seq"])

    # ------------------------------------------------------------------ clocks
    def _tick(self) -> None:
        self.lamport += 1
        self.vc[self.node] = self.vc.get(self.node, 0) + 1

    def _vc(self) -> dict[str, int]:
        return {str(n): c for n, c in sorted(self.vc.items())}

    def now(self) -> float:
        return round(self.clock() - self.start, 6)

    def _write(self, record: dict[str, object]) -> None:
        if self._file is not None:
            self._file.write(_json.encode(record) + b"\n")

    # ------------------------------------------------------------------ the wire
    def wrap(self, dst: NodeId, message: Message, payload: bytes) -> bytes:
        """Tick, record the send, and return the stamped frame for `dst`."""
        self._tick()
        self.seq += 1
        self._write(
            {
                "t": self.now(),
                "kind": "send",
                "id": message_id(self.node, self.seq),
                "src": self.node,
                "dst": dst,
                "msg": message.describe(),
                "type": type(message).__name__,
                "lamport": self.lamport,
                "vc": self._vc(),
                "seq": self.seq,
            }
        )
        return _stamp_encoder.encode(Stamped(self.seq, self.lamport, dict(self.vc), payload))

    @staticmethod
    def unwrap(frame: bytes) -> Stamped:
        """Decode a stamped frame; raises `msgspec.DecodeError`/`ValidationError`."""
        return _stamp_decoder.decode(frame)

    def received(self, src: NodeId, stamp: Stamped) -> None:
        """Merge the sender's clocks and record the delivery (call right before handling)."""
        self.lamport = max(self.lamport, stamp.lamport) + 1
        for node, count in stamp.vc.items():
            if count > self.vc.get(node, 0):
                self.vc[node] = count
        self.vc[self.node] = self.vc.get(self.node, 0) + 1
        self._write(
            {
                "t": self.now(),
                "kind": "deliver",
                "id": message_id(src, stamp.seq),
                "src": src,
                "dst": self.node,
                "lamport": self.lamport,
                "vc": self._vc(),
            }
        )

    # ------------------------------------------------------------------ local happenings
    def event(self, event: Event) -> None:
        self._tick()
        record: dict[str, object] = {
            "t": self.now(),
            "kind": "event",
            "node": self.node,
            "event": event.describe(),
            "lamport": self.lamport,
            "vc": self._vc(),
            "data": msgspec.to_builtins(event),
        }
        self._write(record)
        if self.echo is not None:
            self.echo(record)

    def command(self, operation: Operation) -> None:
        self._tick()
        self._write(
            {
                "t": self.now(),
                "kind": "command",
                "node": self.node,
                "op": operation.describe(),
                "f": operation.f,
                "key": operation.key,
                "value": msgspec.to_builtins(operation.value),
                "lamport": self.lamport,
                "vc": self._vc(),
            }
        )

    def timer(self, name: str) -> None:
        self._write({"t": self.now(), "kind": "timer", "node": self.node, "name": name})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

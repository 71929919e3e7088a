"""The RPC benchmark's measured window (`tejido.bench.rpc_client.Window`): a loop stops at
the first call completing past the end once it has counted a call; a window with no call
yet takes in the first one and grows its duration to match (a stall on a loaded machine
must not leave a run with nothing measured)."""

from __future__ import annotations

from array import array

from tejido.bench.rpc_client import Window


def test_a_window_with_calls_ends_at_its_end() -> None:
    window = Window(0.0, 1.0)
    latencies = array("q", [5])
    assert window.past_end(window.end_ns, latencies)
    assert window.duration_s == 1.0


def test_a_window_without_calls_takes_in_the_first_and_grows() -> None:
    window = Window(0.0, 1.0)
    late = window.end_ns + 2_000_000_000  # a call that stalled 2 s past the end
    latencies: array[int] = array("q")
    assert not window.past_end(late, latencies)
    assert window.end_ns == late + 1
    assert window.duration_s == (late + 1 - window.start_ns) / 1e9
    assert window.duration_s > 2.9
    latencies.append(3_000_000_000)
    window.latencies.extend(latencies)
    result = window.result("tejido", "sequential")
    assert result.calls == 1
    assert result.throughput == 1 / window.duration_s
    assert window.past_end(late + 5, latencies)  # counted now: the next call ends it

"""Where tejido's RPC spends its time: py-spy on the benchmark's server and client.

`profile_tejido` starts a tejido benchmark server, then one ``64 in flight`` client run, and
samples both processes with py-spy (``--nonblocking``: the processes are never paused, so
the sampling costs them almost nothing, though py-spy itself needs CPU on a 2-core
machine). It writes py-spy's collapsed stacks (one ``frame;frame;... count`` line per
distinct stack, the input of flame graph tools) to ``DIR/tejido-server.txt`` and
``DIR/tejido-client.txt``, and summarises each side: the functions with the most samples
on top of the stack (self) and on the stack at all (inclusive). Only stacks under the
running event loop count (start-up, imports and CPU pinning are left out); time spent in
the event loop's C code (uvloop: polling, socket reads and writes) shows up as the Python
frame that called into it (``Runner.run``).

py-spy is not a dependency: ``pip install py-spy``. It needs permission to read the
processes' memory (root, or ``ptrace_scope`` 0).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec

from tejido.bench.rpc_client import RunResult
from tejido.bench.rpc_processes import RpcBenchError, cpus_arg, start_server, stop_server
from tejido.bench.rpc_setup import IN_FLIGHT, TEJIDO, Placement

__all__ = ["profile_tejido", "summarize_collapsed"]

_LINE = re.compile(r":\d+\)$")
_IMPORTING = "<frozen importlib"
#: Only stacks under the running event loop count: start-up, imports and pinning do not.
_LOOP = "Runner.run (asyncio/runners.py"
_SAMPLES_PER_S = 500


def summarize_collapsed(text: str, *, title: str, top: int = 15) -> str:
    """The top self and inclusive functions of py-spy's collapsed stacks, as percentages."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit() or _LOOP not in stack or _IMPORTING in stack:
            continue
        samples = int(count)
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if total == 0:
        return f"{title}: no samples"
    lines = [f"{title}: {total} busy samples", "  self:"]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive (functions of tejido, the event loop and the benchmark):")
    shown = [
        (frame, n)
        for frame, n in inclusive.most_common()
        if "tejido/" in frame or "asyncio" in frame
    ]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in shown[:top]]
    return "\n".join(lines)


def profile_tejido(
    out_dir: Path, *, placement: Placement, duration_s: float, warmup_s: float
) -> str:
    """Profile one tejido ``64 in flight`` run; write the stacks, return the summaries."""
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        raise RpcBenchError("--profile needs py-spy: pip install py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    server_out, client_out = out_dir / "tejido-server.txt", out_dir / "tejido-client.txt"
    sampling = [py_spy, "record", "--nonblocking", "--format", "raw", "-r", str(_SAMPLES_PER_S)]
    server = start_server(TEJIDO, placement)
    try:
        seconds = int(warmup_s + duration_s + 5)
        server_spy = subprocess.Popen(
            [*sampling, "-d", str(seconds), "-p", str(server.process.pid), "-o", str(server_out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        client_command = [
            sys.executable, "-m", "tejido.bench.rpc_client", TEJIDO, str(server.port), IN_FLIGHT,
            "--warmup", str(warmup_s), "--duration", str(duration_s),
            *cpus_arg(placement.client_cpus),
        ]  # fmt: skip
        client = subprocess.run(
            [*sampling, "-o", str(client_out), "--", *client_command],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    finally:
        stop_server(server)  # py-spy stops sampling when the server exits
    _, server_err = server_spy.communicate(timeout=seconds + 60)
    if client.returncode != 0 or not client_out.exists():
        raise RpcBenchError(f"profiling the tejido client failed:\n{client.stderr[-2000:]}")
    if not server_out.exists():
        raise RpcBenchError(f"profiling the tejido server failed:\n{server_err[-2000:]}")
    # py-spy prints its own lines around the client's: take the client's JSON line.
    json_lines = [line for line in client.stdout.splitlines() if line.startswith("{")]
    if not json_lines:
        raise RpcBenchError(f"the profiled tejido client printed no result:\n{client.stdout}")
    result = msgspec.json.decode(json_lines[-1], type=RunResult)
    return "\n".join(
        [
            f"profiled run (under py-spy): {result.throughput:,.0f} calls/s, "
            f"p50 {result.p50_us:,.0f} us, p99 {result.p99_us:,.0f} us",
            summarize_collapsed(server_out.read_text(), title=f"tejido server ({server_out})"),
            summarize_collapsed(client_out.read_text(), title=f"tejido client ({client_out})"),
        ]
    )

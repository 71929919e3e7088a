"""`tejido bench mpi`: message passing side by side (records for issue 8).

Systems: ``tejido-tcp`` (tejido.mpi's tcp backend under `tejido mpirun`), ``tejido-mpi``
(tejido.mpi's mpi backend under OpenMPI's mpirun), ``mpi4py`` (raw mpi4py under the same
mpirun) and ``socket`` (a raw Python TCP stream over loopback between two processes: the
floor any Python transport pays).

The tcp backend's point-to-point workloads run with the same-host paths off
(``TEJIDO_MPI_SHM_MIN=0``: sockets only, as between two hosts); ``bandwidth ... same-host``
repeats the bandwidth runs with them on (cross-memory reads, see `tejido.mpi.cma`), and
its allreduces run with them on, as ranks on one host do.

Workloads, each run by one job of the right size: ``pingpong 8B`` (half a round trip,
``latency`` in ``us``), ``bandwidth 1MiB`` / ``bandwidth 16MiB`` (one-way, each message
acknowledged by one byte, ``bandwidth`` in ``GB/s``; and ``cpu``: the CPU time, in ``ms``,
both processes spent per message, sender's plus receiver's, which other load on the
machine disturbs far less than wall time; every system sends written memory, the socket
floor included), ``allreduce 1 f64 n=N`` and
``allreduce 1M f64 n=N`` (``time`` per call in ``ms``), for N = 2 and 4; and for the
mpi backend and mpi4py ``send+recv 8B self`` (``cpu`` in ``us`` per 8-byte Send+Recv pair
on COMM_SELF in one process, see `_self_cpu_worker`). The worker is this
module itself (``python -m tejido.bench.mpi worker SYSTEM``); rank 0 prints one
``RECORD <json>`` line per measurement; the median of `repeats` rounds is reported.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tejido.bench.records import Record

__all__ = ["bench_mpi"]

ALL_PARTS = "pingpong,bandwidth,allreduce"
#: Environment of a tcp-backend job whose ranks talk only through their sockets.
_SOCKET_ONLY = {"TEJIDO_MPI_SHM_MIN": "0"}
PINGPONG_ITERS = 2000
BANDWIDTH_ITERS = {1 << 20: 40, 16 << 20: 8}
ALLREDUCE_ITERS = {1: 1000, 1_000_000: 15}


def _median_time(
    fn: Callable[[], None],
    iters: int,
    repeats: int,
    sync: Callable[[], None],
    cpu: list[float] | None = None,
) -> float:
    """Median over `repeats` rounds of the wall time per call; with `cpu`, also append
    this process's CPU time per call over all the timed rounds."""
    times = []
    spent = 0.0
    fn()  # warm-up
    for _ in range(repeats):
        sync()
        start_cpu = time.process_time()
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        times.append((time.perf_counter() - start) / iters)
        spent += time.process_time() - start_cpu
    if cpu is not None:
        cpu.append(spent / (iters * repeats))
    return statistics.median(times)


def _emit(record: Record) -> None:
    print("RECORD " + json.dumps(record), flush=True)  # noqa: T201 (the worker's output)


def _worker(system: str, repeats: int, parts: str = ALL_PARTS, suffix: str = "") -> None:
    """Run the `parts` (comma-separated: pingpong, bandwidth, allreduce) of this job's
    workloads; `suffix` is appended to the bandwidth workloads' names."""
    import numpy as np

    comm: Any
    if system == "mpi4py":
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
    else:
        from tejido import mpi

        comm = mpi.COMM_WORLD
        rank, size = comm.rank, comm.size
    sync = comm.Barrier
    wanted = set(parts.split(","))
    if size == 2 and "pingpong" in wanted:
        small = np.zeros(8, dtype=np.uint8)

        def pingpong() -> None:
            if rank == 0:
                comm.Send(small, 1, 1)
                comm.Recv(small, 1, 1)
            else:
                comm.Recv(small, 0, 1)
                comm.Send(small, 0, 1)

        t = _median_time(pingpong, PINGPONG_ITERS, repeats, sync)
        if rank == 0:
            _emit(
                {
                    "system": system,
                    "workload": "pingpong 8B",
                    "metric": "latency",
                    "value": t / 2 * 1e6,
                    "unit": "us",
                }
            )
    if size == 2 and "bandwidth" in wanted:
        ack = np.zeros(1, dtype=np.uint8)
        for nbytes, iters in BANDWIDTH_ITERS.items():
            buf = np.ones(nbytes, dtype=np.uint8)

            def one_way(buf: Any = buf) -> None:
                if rank == 0:
                    comm.Send(buf, 1, 2)
                    comm.Recv(ack, 1, 3)
                else:
                    comm.Recv(buf, 0, 2)
                    comm.Send(ack, 0, 3)

            cpu: list[float] = []
            t = _median_time(one_way, iters, repeats, sync, cpu)
            both = comm.gather(cpu[0], root=0)
            if rank == 0:
                label = f"bandwidth {nbytes >> 20}MiB{suffix}"
                _emit(
                    {
                        "system": system,
                        "workload": label,
                        "metric": "bandwidth",
                        "value": nbytes / t / 1e9,
                        "unit": "GB/s",
                    }
                )
                _emit(
                    {
                        "system": system,
                        "workload": label,
                        "metric": "cpu",
                        "value": sum(both) * 1e3,
                        "unit": "ms",
                    }
                )
    for count, iters in ALLREDUCE_ITERS.items() if "allreduce" in wanted else ():
        a = np.ones(count, dtype=np.float64)
        out = np.empty_like(a)

        def allreduce(a: Any = a, out: Any = out) -> None:
            comm.Allreduce(a, out)

        t = _median_time(allreduce, iters, repeats, sync)
        if rank == 0:
            label = f"allreduce {'1M' if count == 1_000_000 else count} f64 n={size}"
            _emit(
                {
                    "system": system,
                    "workload": label,
                    "metric": "time",
                    "value": t * 1e3,
                    "unit": "ms",
                }
            )


# ---------------------------------------------------------------------- raw socket floor
def _socket_peer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        header = bytearray(8)
        view = memoryview(bytearray(16 << 20))
        since = time.process_time()
        while True:
            if not _recv_exact(sock, memoryview(header)):
                return
            nbytes = int.from_bytes(header, "big")
            if nbytes == 0:
                return
            if nbytes == _CPU_RESET:
                since = time.process_time()
            elif nbytes == _CPU_REPORT:
                sock.sendall(struct.pack("<d", time.process_time() - since))
            elif nbytes == 8:
                _recv_exact(sock, view[:8])
                sock.sendall(view[:8])
            else:
                _recv_exact(sock, view[:nbytes])
                sock.sendall(b"\1")


#: Socket-floor control codes in the length field: restart the peer's CPU clock / send
#: back the CPU time it spent since (a little-endian double, seconds).
_CPU_RESET = 1
_CPU_REPORT = 2


def _recv_exact(sock: socket.socket, view: memoryview) -> bool:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            return False
        got += n
    return True


def _socket_records(repeats: int) -> list[Record]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    peer = subprocess.Popen([sys.executable, "-m", "tejido.bench.mpi", "socket-peer", str(port)])
    sock, _ = server.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    records: list[Record] = []
    try:
        small = bytearray(8)

        def pingpong() -> None:
            sock.sendall((8).to_bytes(8, "big") + small)
            _recv_exact(sock, memoryview(small))

        t = _median_time(pingpong, PINGPONG_ITERS, repeats, lambda: None)
        records.append(
            {
                "system": "socket",
                "workload": "pingpong 8B",
                "metric": "latency",
                "value": t / 2 * 1e6,
                "unit": "us",
            }
        )
        ack = bytearray(1)
        for nbytes, iters in BANDWIDTH_ITERS.items():
            # Written memory, as the MPI workers' numpy buffers: a never-written
            # bytearray maps every page to the kernel's one zero page, whose copies hit
            # the cache and flatter the floor.
            payload = memoryview(bytearray(b"\1") * nbytes)

            def one_way(payload: memoryview = payload, nbytes: int = nbytes) -> None:
                sock.sendall(nbytes.to_bytes(8, "big"))
                sock.sendall(payload)
                _recv_exact(sock, memoryview(ack))

            one_way()  # warm-up, outside the peer's CPU clock
            sock.sendall(_CPU_RESET.to_bytes(8, "big"))
            cpu: list[float] = []
            t = _median_time(one_way, iters, repeats, lambda: None, cpu)
            sock.sendall(_CPU_REPORT.to_bytes(8, "big"))
            answer = bytearray(8)
            _recv_exact(sock, memoryview(answer))
            # The peer's clock also ran through _median_time's own warm-up call.
            (peer_cpu,) = struct.unpack("<d", answer)
            peer_per_message = peer_cpu / (iters * repeats + 1)
            records.append(
                {
                    "system": "socket",
                    "workload": f"bandwidth {nbytes >> 20}MiB",
                    "metric": "bandwidth",
                    "value": nbytes / t / 1e9,
                    "unit": "GB/s",
                }
            )
            records.append(
                {
                    "system": "socket",
                    "workload": f"bandwidth {nbytes >> 20}MiB",
                    "metric": "cpu",
                    "value": (cpu[0] + peer_per_message) * 1e3,
                    "unit": "ms",
                }
            )
        sock.sendall((0).to_bytes(8, "big"))
    finally:
        sock.close()
        server.close()
        peer.wait(timeout=30)
    return records


# ---------------------------------------------------------------------- driver
def _launch(
    system: str,
    n: int,
    repeats: int,
    parts: str = ALL_PARTS,
    suffix: str = "",
    extra_env: dict[str, str] | None = None,
    worker: list[str] | None = None,
) -> list[Record]:
    if worker is None:
        worker = [sys.executable, "-m", "tejido.bench.mpi", "worker", system, str(repeats)]
        worker += [parts, suffix]
    env = dict(os.environ)
    for name in ("TEJIDO_MPI_BACKEND", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        env.pop(name, None)
    env.update(extra_env or {})
    if system == "tejido-tcp":
        cmd = [sys.executable, "-m", "tejido.cli.main", "mpirun", "-n", str(n), *worker]
    else:
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            return [
                {
                    "system": system,
                    "workload": f"n={n}",
                    "metric": "error",
                    "value": "mpirun not found",
                    "unit": "",
                }
            ]
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        cmd = [mpirun, "--oversubscribe", "-n", str(n), *worker]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    records: list[Record] = [
        json.loads(line[len("RECORD ") :])
        for line in done.stdout.splitlines()
        if line.startswith("RECORD ")
    ]
    if done.returncode != 0:
        records.append(
            {
                "system": system,
                "workload": f"n={n}",
                "metric": "error",
                "value": f"exit {done.returncode}: {done.stderr[-300:]}",
                "unit": "",
            }
        )
    return records


def bench_mpi(
    repeats: int = 3, systems: tuple[str, ...] = ("tejido-tcp", "tejido-mpi", "mpi4py", "socket")
) -> list[Record]:
    records: list[Record] = []
    for system in systems:
        if system == "socket":
            records += _socket_records(repeats)
            continue
        if system == "tejido-tcp":
            # Point-to-point as between two hosts: the socket path only (the issue's
            # bandwidth target is "two hosts' worth of traffic over loopback").
            records += _launch(system, 2, repeats, "pingpong,bandwidth", "", _SOCKET_ONLY)
            # Ranks on one host (the allreduce target), large buffers off the socket.
            records += _launch(system, 2, repeats, "bandwidth,allreduce", " same-host")
            records += _launch(system, 4, repeats, "allreduce")
            continue
        for n in (2, 4):
            records += _launch(system, n, repeats)
    if "mpi4py" in systems or "tejido-mpi" in systems:
        self_cpu = [sys.executable, "-m", "tejido.bench.mpi", "self-cpu"]
        records += [
            r
            for r in _launch("mpi4py", 1, repeats, worker=self_cpu)
            if r["system"] in systems or r["metric"] == "error"
        ]
    return records


#: The mpi backend's per-call cost: `SELF_PAIRS` 8-byte Send+Recv pairs on COMM_SELF per
#: round, `SELF_ROUNDS` rounds alternating raw mpi4py and tejido.
SELF_PAIRS = 100_000
SELF_ROUNDS = 7


def _self_cpu_worker() -> None:
    """CPU time per 8-byte ``Send`` + ``Recv`` pair on ``COMM_SELF`` in one process, raw
    mpi4py against tejido's mpi backend (rounds alternate; medians reported as the
    ``send+recv 8B self`` workload, metric ``cpu`` in ``us``). One process and CPU time:
    what the API layer costs per call, which wall-time ping-pongs on a loaded machine
    cannot resolve (OpenMPI's ranks spin while they wait)."""
    import numpy as np
    from mpi4py import MPI

    from tejido import mpi
    from tejido.mpi.mpi4py_backend import MpiComm

    comms: dict[str, Any] = {"mpi4py": MPI.COMM_SELF, "tejido-mpi": MpiComm(MPI.COMM_SELF)}
    data = np.zeros(8, dtype=np.uint8)
    into = np.zeros(8, dtype=np.uint8)

    def pairs(comm: Any, status: Any) -> float:
        start = time.process_time()
        for _ in range(SELF_PAIRS):
            comm.Send(data, 0, 1)
            comm.Recv(into, 0, 1, status)
        return (time.process_time() - start) / SELF_PAIRS

    for label, status in (("", None), (" status", mpi.Status())):
        spent: dict[str, list[float]] = {name: [] for name in comms}
        for _ in range(SELF_ROUNDS):
            for name, comm in comms.items():
                spent[name].append(pairs(comm, status))
        for name, values in spent.items():
            _emit(
                {
                    "system": name,
                    "workload": f"send+recv 8B self{label}",
                    "metric": "cpu",
                    "value": statistics.median(values) * 1e6,
                    "unit": "us",
                }
            )


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        _worker(sys.argv[2], int(sys.argv[3]), *sys.argv[4:6])
    elif sys.argv[1] == "self-cpu":
        _self_cpu_worker()
    elif sys.argv[1] == "socket-peer":
        _socket_peer(int(sys.argv[2]))

"""The tcp backend's job secret: connections without it are refused, the job still forms."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from tejido.mpi import AuthenticationFailed
from tejido.mpi.setup import (
    AuthChallenge,
    AuthFailed,
    AuthProof,
    AuthRequest,
    JobInfo,
    _decode,
    _encode,
    connect_job,
)
from tejido.net.connection import connect
from tejido.net.handshake import HandshakeRefused, Hello


def _job(tmp_path: Path, rank: int, secret: bytes) -> JobInfo:
    return JobInfo("job1", secret, rank, 2, tmp_path, connect_timeout_s=20.0)


def _start_rank0(job: JobInfo) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["socks"] = connect_job(job)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


async def _wait_address(path: Path) -> str:
    while not path.exists():
        await asyncio.sleep(0.01)
    return path.read_text().strip()


def test_wrong_secret_is_refused_and_the_job_still_forms(tmp_path: Path) -> None:
    secret = secrets.token_bytes(32)
    thread, out = _start_rank0(_job(tmp_path, 0, secret))

    async def impostor() -> tuple[str, bool]:
        address = await asyncio.wait_for(_wait_address(tmp_path / "rank0.addr"), 20)
        conn = await connect(address, Hello(cluster="mpi-job1", node="1", purpose="mpi"))
        answers: asyncio.Queue[bytes] = asyncio.Queue()

        class Receiver:
            def frame_received(self, payload: bytes) -> None:
                answers.put_nowait(payload)

            def connection_lost(self, exc: BaseException | None) -> None:
                answers.put_nowait(b"")

        conn.attach(Receiver())
        conn.send(_encode(AuthRequest(1, secrets.token_bytes(16))))
        challenge = _decode(await asyncio.wait_for(answers.get(), 20))
        assert isinstance(challenge, AuthChallenge)
        conn.send(_encode(AuthProof(b"\0" * 32)))  # we do not know the secret
        refusal = _decode(await asyncio.wait_for(answers.get(), 20))
        closed = await asyncio.wait_for(answers.get(), 20) == b""
        assert isinstance(refusal, AuthFailed)
        return refusal.reason, closed

    reason, closed = asyncio.run(impostor())
    assert reason == "wrong job secret"
    assert closed
    # The real rank 1 still gets in.
    socks = connect_job(_job(tmp_path, 1, secret))
    thread.join(20)
    assert "error" not in out
    peer = out["socks"]
    assert isinstance(peer, dict)
    assert set(peer) == {1}
    assert set(socks) == {0}
    socks[0].sendall(b"ping")
    assert peer[1].recv(4) == b"ping"
    for s in [*socks.values(), *peer.values()]:
        assert isinstance(s, socket.socket)
        s.close()


def test_a_rank_with_the_wrong_secret_does_not_trust_the_listener(tmp_path: Path) -> None:
    job0 = _job(tmp_path, 0, secrets.token_bytes(32))
    job0 = replace(job0, connect_timeout_s=3.0)
    thread, out = _start_rank0(job0)
    with pytest.raises(AuthenticationFailed, match="rank 0 does not hold this job's secret"):
        connect_job(_job(tmp_path, 1, secrets.token_bytes(32)))
    thread.join(20)
    assert "not every rank connected" in str(out.get("error"))


def test_another_job_is_refused_by_the_handshake(tmp_path: Path) -> None:
    secret = secrets.token_bytes(32)
    job0 = replace(_job(tmp_path, 0, secret), connect_timeout_s=3.0)
    thread, _out = _start_rank0(job0)

    async def stranger() -> None:
        address = await asyncio.wait_for(_wait_address(tmp_path / "rank0.addr"), 20)
        await connect(address, Hello(cluster="mpi-otherjob", node="1", purpose="mpi"))

    with pytest.raises(HandshakeRefused, match="cluster id mismatch"):
        asyncio.run(stranger())
    thread.join(20)

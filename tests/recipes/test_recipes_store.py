"""The recipes against an in-process 3-member store cluster (real Raft, real RPC)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from store.store_fixtures import Cluster, kv_client, run_cluster, wait_until
from tejido.kv import Client
from tejido.mvcc import api
from tejido.recipes import (
    Barrier,
    ClaimLost,
    Counter,
    DoubleBarrier,
    Election,
    FencedResource,
    Lock,
    NotHolder,
    Queue,
    ReadWriteLock,
    Semaphore,
    Session,
    SessionExpired,
    StaleToken,
)


async def _sessions(client: Client, n: int, ttl: int = 5) -> list[Session]:
    return [await Session(client, ttl).open() for _ in range(n)]


def test_lock_serves_waiters_in_order_with_growing_tokens(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            sessions = await _sessions(client, 3)
            first = Lock(sessions[0], "jobs")
            token1 = await first.acquire()
            order: list[int] = []

            async def contender(i: int) -> None:
                lock = Lock(sessions[i], "jobs")
                token = await lock.acquire()
                order.append(i)
                assert token > token1
                await lock.release()

            second = asyncio.create_task(contender(1))
            await asyncio.sleep(0)  # let the second get in line first
            kv = None
            while kv is None:  # the second's key exists before the third starts
                kv = await client.get(Lock(sessions[1], "jobs").key)
            third = asyncio.create_task(contender(2))
            done, _ = await asyncio.wait({second, third}, timeout=0.5)
            assert not done, "a waiter got the lock while it was held"
            await first.release()
            await asyncio.wait_for(asyncio.gather(second, third), 30)
            assert order == [1, 2]
            for s in sessions:
                await s.close()

    run_cluster(tmp_path, body)


def test_guarded_write_refused_after_the_lease_is_gone(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            a, b = await _sessions(client, 2)
            lock_a = Lock(a, "res")
            async with lock_a:
                await lock_a.put("data/value", "from a")
                await client.lease_revoke(a.lease)  # as if a's lease expired
                with pytest.raises(NotHolder):
                    await lock_a.put("data/value", "late a")
                lock_b = Lock(b, "res")
                token_b = await asyncio.wait_for(lock_b.acquire(), 30)
                assert token_b > lock_a.token
                await lock_b.put("data/value", "from b")
                kv = await client.get("data/value")
                assert kv is not None
                assert kv.value == b"from b"
                fence = FencedResource()
                fence.admit(token_b)
                with pytest.raises(StaleToken):
                    fence.admit(lock_a.token)
                await lock_b.release()
            await b.close()

    run_cluster(tmp_path, body)


def test_a_dead_holders_lock_passes_on_when_its_lease_expires(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            dead = Session(client, ttl=1)
            await dead.open()
            await Lock(dead, "expiring").acquire()
            assert dead._task is not None
            dead._task.cancel()  # the holder stops renewing: it "died"
            alive = await Session(client, ttl=5).open()
            token = await asyncio.wait_for(Lock(alive, "expiring").acquire(), 30)
            assert token > 0
            await alive.close()

    run_cluster(tmp_path, body)


def test_waiting_ends_with_session_expired_when_our_lease_goes(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            holder, waiter = await _sessions(client, 2)
            await Lock(holder, "w").acquire()
            waiting_lock = Lock(waiter, "w")
            waiting = asyncio.create_task(waiting_lock.acquire())

            async def in_line() -> bool:
                return await client.get(waiting_lock.key) is not None

            await wait_until(in_line, 30, "the waiter's key")
            await client.lease_revoke(waiter.lease)
            with pytest.raises(SessionExpired):
                await asyncio.wait_for(waiting, 30)
            await holder.close()

    run_cluster(tmp_path, body)


def test_semaphore_and_read_write_lock(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            s = await _sessions(client, 3)
            sem = [Semaphore(x, "pool", 2) for x in s]
            await sem[0].acquire()
            await sem[1].acquire()
            third = asyncio.create_task(sem[2].acquire())
            done, _ = await asyncio.wait({third}, timeout=0.5)
            assert not done, "a third holder entered a semaphore of 2"
            await sem[0].release()
            await asyncio.wait_for(third, 30)
            await sem[1].release()
            await sem[2].release()

            readers = [ReadWriteLock(x, "rw").read() for x in s[:2]]
            for r in readers:
                await asyncio.wait_for(r.acquire(), 30)  # readers share the lock
            writer = ReadWriteLock(s[2], "rw").write()
            writing = asyncio.create_task(writer.acquire())
            done, _ = await asyncio.wait({writing}, timeout=0.5)
            assert not done, "a writer entered while readers held the lock"
            for r in readers:
                await r.release()
            await asyncio.wait_for(writing, 30)
            await writer.release()
            for x in s:
                await x.close()

    run_cluster(tmp_path, body)


def test_election_campaign_observe_proclaim_resign(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            a, b = await _sessions(client, 2)
            ea, eb = Election(a, "leader"), Election(b, "leader")
            seen = []
            stream = ea.observe()
            first = await asyncio.wait_for(anext(stream), 30)
            assert first is None
            term_a = await ea.campaign("a")
            leader = await asyncio.wait_for(anext(stream), 30)
            assert leader is not None
            assert (leader.value, leader.term) == (b"a", term_a)
            await ea.proclaim("a2")
            leader = await asyncio.wait_for(anext(stream), 30)
            assert leader is not None
            assert (leader.value, leader.term) == (b"a2", term_a)
            campaign_b = asyncio.create_task(eb.campaign("b"))
            await ea.resign()
            term_b = await asyncio.wait_for(campaign_b, 30)
            assert term_b > term_a
            while True:
                leader = await asyncio.wait_for(anext(stream), 30)
                seen.append(leader)
                if leader is not None and leader.value == b"b":
                    break
            assert leader.term == term_b
            with pytest.raises(NotHolder):
                await ea.proclaim("stale")
            await stream.aclose()  # type: ignore[attr-defined]
            await a.close()
            await b.close()

    run_cluster(tmp_path, body)


def test_barriers_queue_and_counter(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            s = await _sessions(client, 3, ttl=2)
            barrier = Barrier(client, "gate")
            await barrier.hold()
            waiting = asyncio.create_task(barrier.wait())
            done, _ = await asyncio.wait({waiting}, timeout=0.3)
            assert not done
            await barrier.release()
            await asyncio.wait_for(waiting, 30)

            double = [DoubleBarrier(x, "round1", 2) for x in s[:2]]
            entering = asyncio.create_task(double[0].enter())
            done, _ = await asyncio.wait({entering}, timeout=0.3)
            assert not done, "entered a double barrier of 2 alone"
            await asyncio.wait_for(double[1].enter(), 30)
            await asyncio.wait_for(entering, 30)
            leaving = asyncio.create_task(double[0].leave())
            done, _ = await asyncio.wait({leaving}, timeout=0.3)
            assert not done, "left while the other participant had not"
            await asyncio.wait_for(double[1].leave(), 30)
            await asyncio.wait_for(leaving, 30)

            producer = Queue(s[0], "q")
            for i in range(3):
                await producer.put(f"item{i}")
            consumer = Queue(s[1], "q")
            item = await consumer.get()
            assert item.value == b"item0"
            await consumer.ack(item)
            dying = Queue(s[2], "q")
            lost = await dying.get()
            assert lost.value == b"item1"
            await client.lease_revoke(s[2].lease)  # the consumer died
            again = await asyncio.wait_for(consumer.get(), 30)
            assert again.value == b"item1"  # redelivered, still first in line
            with pytest.raises(ClaimLost):
                await dying.ack(lost)
            await consumer.ack(again)
            assert (await consumer.get()).value == b"item2"

            counters = [Counter(client, "hits") for _ in range(4)]
            await asyncio.gather(*(c.add(1) for c in counters for _ in range(5)))
            assert await counters[0].get() == 20
            await client.put("bad", "x")
            with pytest.raises(Exception, match="not an integer"):
                await Counter(client, "bad").add()
            txn = await client.txn(api.TxnRequest(success=[api.RangeRequest(key=b"hits")]))
            assert txn.result.succeeded

    run_cluster(tmp_path, body)


def test_a_cancelled_acquire_leaves_the_line(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            a, b, c = await _sessions(client, 3)
            await Lock(a, "line").acquire()
            impatient = Lock(b, "line")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(impatient.acquire(), 0.5)
            assert await client.get(impatient.key) is None  # it left the line
            third = asyncio.create_task(Lock(c, "line").acquire())
            await Lock(a, "line").release()
            await asyncio.wait_for(third, 30)  # not held up by the impatient one's key
            for s in (a, b, c):
                await s.close()

    run_cluster(tmp_path, body)

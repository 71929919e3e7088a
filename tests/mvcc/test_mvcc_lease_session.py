"""Leases (etcd3 API overview, "Lease API": grant, revoke deletes attached keys, time to
live with keys; an unknown lease is "requested lease not found") and exactly-once sessions
(Raft dissertation §6.3)."""

from __future__ import annotations

from mvcc_driver import Driver

from tejido.mvcc.api import (
    CloseSession,
    CloseSessionResponse,
    LeaseExpire,
    LeaseExpireResponse,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseLeases,
    LeaseLeasesResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    LeaseStatus,
    LeaseTimeToLive,
    LeaseTimeToLiveResponse,
    OpenSession,
    OpenSessionResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
)
from tejido.mvcc.machine import StoreStateMachine


def keys(d: Driver) -> list[bytes]:
    return [kv.key for kv in d.read_ok(RangeRequest(b"\0", b"\0"), RangeResponse).kvs]


def test_grant_picks_ids_deterministically_and_refuses_duplicates() -> None:
    d = Driver()
    first = d.ok(LeaseGrant(10), LeaseGrantResponse)
    d.ok(LeaseGrant(10, id=2), LeaseGrantResponse)
    third = d.ok(LeaseGrant(5), LeaseGrantResponse)
    assert (first.id, third.id) == (1, 3)  # 2 is taken
    assert first.header_revision == 1  # a grant changes no key
    d.error(LeaseGrant(10, id=2), "lease_exists")
    d.error(LeaseGrant(0), "bad_request")
    statuses = d.read_ok(LeaseLeases(), LeaseLeasesResponse).leases
    assert statuses == [LeaseStatus(1, 10), LeaseStatus(2, 10), LeaseStatus(3, 5)]
    assert d.machine.leases() == statuses


def test_revoke_deletes_attached_keys_in_one_revision() -> None:
    d = Driver()
    lease = d.ok(LeaseGrant(10), LeaseGrantResponse).id
    d.write(PutRequest(b"a", b"1", lease=lease))
    d.write(PutRequest(b"b", b"1", lease=lease))
    d.write(PutRequest(b"c", b"1"))
    d.write(PutRequest(b"b", b"2"))  # b leaves the lease (a put without one detaches it)
    ttl = d.read_ok(LeaseTimeToLive(lease, keys=True), LeaseTimeToLiveResponse)
    assert (ttl.granted_ttl, ttl.keys) == (10, [b"a"])
    before = d.machine.revision
    assert d.ok(LeaseRevoke(lease), LeaseRevokeResponse).header_revision == before + 1
    assert keys(d) == [b"b", b"c"]
    d.error(LeaseRevoke(lease), "lease_not_found")
    assert d.query(LeaseTimeToLive(lease)).code == "lease_not_found"  # type: ignore[union-attr]
    d.error(PutRequest(b"x", b"1", lease=lease), "lease_not_found")


def test_expire_is_revoke_for_the_leases_that_still_exist() -> None:
    d = Driver()
    one = d.ok(LeaseGrant(10), LeaseGrantResponse).id
    two = d.ok(LeaseGrant(10), LeaseGrantResponse).id
    d.write(PutRequest(b"a", b"1", lease=one))
    d.write(PutRequest(b"b", b"1", lease=two))
    d.write(PutRequest(b"c", b"1", lease=two))
    expired = d.ok(LeaseExpire([two, one, 77]), LeaseExpireResponse)
    assert expired.expired == [one, two]
    assert keys(d) == []
    events = d.machine.events(expired.header_revision, b"\0", b"\0")
    assert [(e.type, e.kv.key) for e in events] == [
        ("DELETE", b"a"),
        ("DELETE", b"b"),
        ("DELETE", b"c"),
    ]
    # A repeated expiry (e.g. proposed twice by a lessor) changes nothing.
    again = d.ok(LeaseExpire([one]), LeaseExpireResponse)
    assert (again.expired, again.header_revision) == ([], expired.header_revision)


def test_a_retried_command_is_answered_from_the_record() -> None:
    d = Driver()
    session = d.ok(OpenSession(), OpenSessionResponse, time=1.0).client_id
    first = d.ok(
        PutRequest(b"k", b"1", prev_kv=True), PutResponse, client_id=session, seq=1, time=2.0
    )
    retried = d.ok(
        PutRequest(b"k", b"1", prev_kv=True), PutResponse, client_id=session, seq=1, time=3.0
    )
    assert retried == first
    assert d.machine.revision == 2  # applied once
    second = d.ok(PutRequest(b"k", b"2"), PutResponse, client_id=session, seq=2, time=3.0)
    assert second.header_revision == 3
    d.error(PutRequest(b"k", b"1"), "bad_request", client_id=session, seq=1, time=3.0)
    d.error(PutRequest(b"k", b"1"), "session_expired", client_id=99, seq=1, time=3.0)


def test_sessions_expire_by_leader_time() -> None:
    d = Driver(StoreStateMachine(session_ttl_s=10.0))
    old = d.ok(OpenSession(), OpenSessionResponse, time=100.0).client_id
    busy = d.ok(OpenSession(), OpenSessionResponse, time=105.0).client_id
    d.ok(PutRequest(b"a", b""), PutResponse, client_id=busy, seq=1, time=109.0)
    d.ok(PutRequest(b"b", b""), PutResponse, time=110.0)  # old: idle exactly 10 s, kept
    d.ok(PutRequest(b"a", b""), PutResponse, client_id=old, seq=1, time=110.0)
    d.ok(PutRequest(b"c", b""), PutResponse, time=121.0)  # both idle > 10 s
    d.error(PutRequest(b"a", b""), "session_expired", client_id=busy, seq=2, time=121.0)
    d.error(PutRequest(b"a", b""), "session_expired", client_id=old, seq=2, time=121.0)
    # Time never goes back: an older stamp (a new leader's skewed clock) expires nothing
    # and revives nothing.
    fresh = d.ok(OpenSession(), OpenSessionResponse, time=50.0).client_id
    assert d.machine.now() == 121.0
    d.ok(PutRequest(b"a", b""), PutResponse, client_id=fresh, seq=1, time=130.0)


def test_close_session() -> None:
    d = Driver()
    session = d.ok(OpenSession(), OpenSessionResponse).client_id
    d.ok(CloseSession(session), CloseSessionResponse)
    d.error(PutRequest(b"a", b""), "session_expired", client_id=session, seq=1)
    d.error(CloseSession(session), "session_expired")
    d.error(PutRequest(b"a", b""), "bad_request", client_id=session, seq=0)

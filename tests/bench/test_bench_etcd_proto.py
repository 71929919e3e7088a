"""The shared etcd messages (`tejido.bench.etcd_proto`): etcd's field numbers on the wire.

A protobuf tag is ``(field number << 3) | wire type``; 0 = varint, 2 = length-delimited.
"""

from __future__ import annotations

from pathlib import Path

from tejido.bench.etcd_proto import MODULE, etcd_messages, load_proto


def test_lock_and_lease_messages_carry_etcds_field_numbers(tmp_path: Path) -> None:
    pb = etcd_messages(tmp_path)
    assert pb.__name__ == MODULE
    lock = pb.LockRequest(name=b"n", lease=7).SerializeToString()
    assert lock == bytes([1 << 3 | 2, 1]) + b"n" + bytes([2 << 3 | 0, 7])
    assert pb.UnlockRequest(key=b"k").SerializeToString() == bytes([1 << 3 | 2, 1]) + b"k"
    assert pb.LockResponse.FromString(bytes([2 << 3 | 2, 1]) + b"x").key == b"x"
    assert pb.LeaseGrantRequest(TTL=5).SerializeToString() == bytes([1 << 3 | 0, 5])
    assert pb.LeaseGrantResponse.FromString(bytes([2 << 3 | 0, 9])).ID == 9
    assert pb.LeaseRevokeRequest(ID=3).SerializeToString() == bytes([1 << 3 | 0, 3])
    count = pb.RangeRequest(key=b"p", count_only=True).SerializeToString()
    assert count.endswith(bytes([9 << 3 | 0, 1]))  # etcd: count_only = 9
    assert pb.RangeResponse.FromString(bytes([4 << 3 | 0, 4])).count == 4


def test_the_kv_and_lock_benchmarks_share_one_module(tmp_path: Path) -> None:
    from tejido.bench import kv_etcd, recipes

    kv_etcd.compile_proto(tmp_path)
    shared = load_proto(tmp_path)
    assert kv_etcd.load_proto(str(tmp_path)) is shared
    assert recipes._etcd_messages(tmp_path) is shared
    # the KV messages and the lock messages are in it together
    assert shared.PutRequest(key=b"k").key == b"k"
    assert shared.LockRequest(name=b"n").name == b"n"

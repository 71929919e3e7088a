"""The consistent-hash ring that places virtual actors (tejido.actors.placement).

Properties checked with hypothesis against naive oracles: the owner is the first point
clockwise (a linear scan), the ring depends only on the member set, a join moves only
the keys the newcomer takes, a leave moves only the leaver's keys, and shares stay
close to fair.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tejido.actors.placement import HashRing, NoMembers, key_point

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:.-", min_size=1, max_size=12)
member_sets = st.sets(names, min_size=1, max_size=7)
KEYS = [f"user-{i}" for i in range(2000)]


def naive_owner(members: set[str], virtual_nodes: int, key: str) -> str:
    """The oracle: scan every point for the first one at or after the key's point."""
    points = []
    for member in members:
        for i in range(virtual_nodes):
            digest = hashlib.blake2b(member.encode() + b"\0" + str(i).encode(), digest_size=8)
            points.append((int.from_bytes(digest.digest(), "big"), member))
    target = key_point(key)
    after = [p for p in points if p[0] >= target]
    return min(after)[1] if after else min(points)[1]


@settings(max_examples=40, deadline=None)
@given(member_sets, st.lists(names, min_size=1, max_size=20))
def test_owner_matches_a_linear_scan(members: set[str], keys: list[str]) -> None:
    ring = HashRing(members, virtual_nodes=16)
    for key in keys:
        assert ring.owner(key) == naive_owner(members, 16, key)


@settings(max_examples=40, deadline=None)
@given(member_sets, st.randoms(use_true_random=False))
def test_deterministic_for_the_same_membership(members: set[str], rnd: random.Random) -> None:
    order = sorted(members)
    rnd.shuffle(order)
    built = HashRing(order, virtual_nodes=32)
    grown = HashRing(virtual_nodes=32)
    for member in reversed(order):
        grown.add(member)
    extra = HashRing([*order, "zz-extra"], virtual_nodes=32)
    extra.remove("zz-extra")
    replaced = HashRing(["other"], virtual_nodes=32)
    replaced.replace(order)
    for key in KEYS[:300]:
        owner = built.owner(key)
        assert grown.owner(key) == owner
        assert extra.owner(key) == owner
        assert replaced.owner(key) == owner
        assert owner in members


@settings(max_examples=30, deadline=None)
@given(member_sets, names)
def test_a_join_moves_only_the_keys_the_newcomer_takes(members: set[str], new: str) -> None:
    members.discard(new)
    if not members:
        members = {new + "x"}
    ring = HashRing(members, virtual_nodes=32)
    before = {key: ring.owner(key) for key in KEYS}
    assert ring.add(new)
    moved = 0
    for key in KEYS:
        after = ring.owner(key)
        if after != before[key]:
            assert after == new, f"{key} moved {before[key]} -> {after}, not to the newcomer"
            moved += 1
    # the newcomer takes roughly its share, never everything
    assert 0 < moved < len(KEYS)


@settings(max_examples=30, deadline=None)
@given(st.sets(names, min_size=2, max_size=7), st.data())
def test_a_leave_moves_only_the_leavers_keys(members: set[str], data: st.DataObject) -> None:
    leaver = data.draw(st.sampled_from(sorted(members)))
    ring = HashRing(members, virtual_nodes=32)
    before = {key: ring.owner(key) for key in KEYS}
    assert ring.remove(leaver)
    preference = HashRing(members, virtual_nodes=32)
    for key in KEYS:
        after = ring.owner(key)
        if before[key] == leaver:
            # it goes to the next distinct member clockwise: the second in preference
            assert after == preference.preference(key, 2)[1]
        else:
            assert after == before[key]


@settings(max_examples=15, deadline=None)
@given(st.sets(names, min_size=2, max_size=6))
def test_balance_with_the_default_virtual_nodes(members: set[str]) -> None:
    ring = HashRing(members)
    counts = dict.fromkeys(members, 0)
    keys = [f"grain/{i}" for i in range(12_000)]
    for key in keys:
        counts[ring.owner(key)] += 1
    fair = len(keys) / len(members)
    for member, count in counts.items():
        # 128 points: a share's spread is about 9 % (1/sqrt(128)); 50 % is > 5 sigma
        assert 0.5 * fair < count < 1.5 * fair, (member, count, fair)


def test_preference_lists_distinct_members_owner_first() -> None:
    ring = HashRing(["a", "b", "c"], virtual_nodes=8)
    for key in KEYS[:100]:
        listed = ring.preference(key, 5)
        assert sorted(listed) == ["a", "b", "c"]
        assert listed[0] == ring.owner(key)


def test_bad_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(NoMembers, match="ring is empty"):
        HashRing().owner("k")
    with pytest.raises(NoMembers):
        HashRing().preference("k", 2)
    with pytest.raises(ValueError, match="non-empty string"):
        HashRing([""])
    with pytest.raises(ValueError, match="virtual_nodes"):
        HashRing(["a"], virtual_nodes=0)
    ring = HashRing(["a"])
    assert not ring.add("a")
    assert not ring.remove("b")
    assert "a" in ring
    assert len(ring) == 1
    assert ring.members == {"a"}

"""The recipes in the simulator: fenced mutual exclusion and unique terms in every seed,
and the unfenced variant's known unsafe interleaving."""

from __future__ import annotations

import msgspec
import pytest

import tejido.sim.specs.recipes as spec
from tejido.core.errors import InvariantViolation
from tejido.core.operations import Operation
from tejido.mvcc import api
from tejido.mvcc.machine import StoreStateMachine
from tejido.sim.options import parse_faults
from tejido.sim.registry import get_protocol
from tejido.sim.runner import run_seed

SEED_CHUNKS = [range(1, 11), range(11, 21), range(21, 31)]


@pytest.mark.parametrize("seeds", SEED_CHUNKS, ids=lambda r: f"{r.start}..{r.stop - 1}")
def test_fenced_recipes_hold_in_every_seed(seeds: range) -> None:
    recipes = get_protocol("recipes")
    refused = 0
    for seed in seeds:
        result = run_seed(recipes, seed, faults=parse_faults("all"))
        assert result.ok, f"seed {seed}: {result.violation}"
        world = spec._current[0]
        locks = [a for a in world.acquisitions if a[1] == spec.LOCK_PREFIX]
        terms = [a for a in world.acquisitions if a[1] == spec.ELECTION_PREFIX]
        assert locks, f"seed {seed}: no lock was ever acquired"
        assert terms, f"seed {seed}: nobody was ever elected"
        places = [a for a in world.acquisitions if a[1] == spec.SEMAPHORE_PREFIX]
        assert places, f"seed {seed}: nobody ever entered the semaphore"
        refused += sum(1 for act in world.lock.log + world.leader.log if not act.accepted)
    # The stalls happen in every run: fencing must have had stale acts to refuse.
    assert refused > 0


def test_unfenced_variant_shows_a_stale_holder_acting() -> None:
    unfenced = get_protocol("recipes-unfenced")
    assert unfenced.broken
    found = 0
    for seed in range(1, 6):
        result = run_seed(unfenced, seed, faults=parse_faults("all"))
        if result.violation is not None:
            assert result.violation.property == "mutual-exclusion"
            assert "after node" in result.violation.detail
            found += 1
    assert found >= 4, "the checker should catch the unfenced interleaving in most seeds"


def test_checker_catches_two_holders_with_one_token() -> None:
    world = spec.World(fenced=True)
    checker = spec.FencedExclusion(world)
    world.lock.act(1.0, 4, 7, "begin")
    world.lock.act(1.1, 5, 7, "begin")

    class _Sim:
        now = 1.2

    with pytest.raises(InvariantViolation, match="two lock holders acted with token 7"):
        checker.check(_Sim())  # type: ignore[arg-type]


def _command(op: api.Request) -> bytes:
    data = api.encode_command(api.Command(op=op))
    return msgspec.msgpack.encode(Operation(api.STORE_OPERATION, data=data))


def test_checker_catches_a_wrong_acquisition() -> None:
    machine = StoreStateMachine()
    machine.apply(_command(api.LeaseGrant(ttl=2, id=1)))
    machine.apply(_command(api.PutRequest(key=b"locks/job/1", lease=1)))
    first = machine.revision
    machine.apply(_command(api.PutRequest(key=b"locks/job/2", lease=1)))
    second = machine.revision
    world = spec.World(fenced=True)
    world.acquisitions.append((4, spec.LOCK_PREFIX, first, second, 1.0))
    assert spec.verify_acquisitions(machine, world) == 1
    world.acquisitions.append((5, spec.LOCK_PREFIX, second, second, 1.5))  # not the oldest
    with pytest.raises(InvariantViolation, match=f"the oldest key\\(s\\) then: {first}"):
        spec.verify_acquisitions(machine, world)


def test_checker_allows_the_semaphore_limit_and_no_more() -> None:
    machine = StoreStateMachine()
    machine.apply(_command(api.LeaseGrant(ttl=2, id=1)))
    revisions = []
    for name in (b"a", b"b", b"c"):
        machine.apply(_command(api.PutRequest(key=spec.SEMAPHORE_PREFIX + b"/" + name, lease=1)))
        revisions.append(machine.revision)
    world = spec.World(fenced=True)
    now = machine.revision
    world.acquisitions.append((9, spec.SEMAPHORE_PREFIX, revisions[1], now, 1.0))  # 2nd of 2
    assert spec.verify_acquisitions(machine, world) == 1
    world.acquisitions.append((10, spec.SEMAPHORE_PREFIX, revisions[2], now, 1.0))  # 3rd
    with pytest.raises(InvariantViolation, match="oldest key"):
        spec.verify_acquisitions(machine, world)

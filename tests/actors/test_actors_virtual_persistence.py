"""Persistence providers of virtual actors: one contract, run on memory, file and store.

The contract (tejido.actors.persistence): load of nothing is (None, 0); save/clear succeed
only with the current etag and return the next one; a stale etag raises StateConflict
and changes nothing; etags never repeat for a grain (not even after a clear); grains with
the same key under different types are different grains.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from actors_fixtures import run
from virtual_fixtures import PROVIDERS, provider_named

from tejido.actors.persistence import (
    FileProvider,
    GrainId,
    MemoryProvider,
    PersistenceError,
    PersistenceProvider,
    StateConflict,
    StoredState,
    StoreProvider,
)
from tejido.store.client import Client

ANA = GrainId("Player", "ana")


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_etag_contract(name: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with provider_named(name, tmp_path) as provider:
            assert isinstance(provider, PersistenceProvider)
            assert await provider.load(ANA) == StoredState(None, 0)

            first = await provider.save(ANA, b"v1", 0)
            assert first > 0
            assert await provider.load(ANA) == StoredState(b"v1", first)

            # two activations loaded `first`: the first writer wins, the second is refused
            second = await provider.save(ANA, b"v2", first)
            assert second > first
            with pytest.raises(StateConflict) as conflict:
                await provider.save(ANA, b"lost?", first)
            assert conflict.value.expected == first
            assert conflict.value.found == second
            assert "Player/ana" in str(conflict.value)
            assert await provider.load(ANA) == StoredState(b"v2", second)
            with pytest.raises(StateConflict):
                await provider.save(ANA, b"from nothing", 0)

            # a grain of another type with the same key is another grain
            other = GrainId("Room", "ana")
            assert (await provider.load(other)).data is None
            await provider.save(other, b"room", 0)
            assert (await provider.load(ANA)).data == b"v2"

            # clear: stale etags still fail, the returned etag writes again
            with pytest.raises(StateConflict):
                await provider.clear(ANA, first)
            cleared = await provider.clear(ANA, second)
            assert (await provider.load(ANA)) == StoredState(None, cleared)
            with pytest.raises(StateConflict):
                await provider.save(ANA, b"stale", second)
            again = await provider.save(ANA, b"v3", cleared)
            assert again not in (first, second, cleared)
            assert await provider.load(ANA) == StoredState(b"v3", again)

            # keys with path-like and non-ASCII characters are just keys
            odd = GrainId("Team/x", "../é/k\0")
            etag = await provider.save(odd, b"odd", 0)
            assert await provider.load(odd) == StoredState(b"odd", etag)

    run(main(), timeout_s=60)


@pytest.mark.parametrize("name", ["memory", "file"])
def test_concurrent_writers_with_one_etag_exactly_one_wins(name: str, tmp_path: Path) -> None:
    async def main() -> None:
        # two provider objects on one directory stand for two nodes sharing it
        if name == "file":
            providers: list[PersistenceProvider] = [
                FileProvider(tmp_path / "g", fsync=False),
                FileProvider(tmp_path / "g", fsync=False),
            ]
        else:
            shared = MemoryProvider()
            providers = [shared, shared]
        etag = await providers[0].save(ANA, b"0", 0)
        for round_ in range(5):
            attempts = [
                providers[i % 2].save(ANA, f"{round_}-{i}".encode(), etag) for i in range(8)
            ]
            results = await asyncio.gather(*attempts, return_exceptions=True)
            winners = [r for r in results if isinstance(r, int)]
            assert len(winners) == 1, results
            assert all(isinstance(r, StateConflict) for r in results if not isinstance(r, int))
            etag = winners[0]
            stored = await providers[1].load(ANA)
            assert stored.etag == etag
            assert stored.data is not None
            assert stored.data.startswith(f"{round_}-".encode())

    run(main())


def test_file_provider_writes_atomically_and_reports_corruption(tmp_path: Path) -> None:
    async def main() -> None:
        provider = FileProvider(tmp_path / "g")
        etag = await provider.save(ANA, b"x" * 10_000, 0)
        await provider.save(ANA, b"y", etag)
        files = [p for p in (tmp_path / "g").rglob("*") if p.is_file() and ".locks" not in p.parts]
        assert len(files) == 1, files  # no temporary file left behind
        assert files[0].suffix == ".grain"
        files[0].write_bytes(b"\x93garbage")  # torn or foreign content
        with pytest.raises(PersistenceError, match="load of grain Player/ana failed"):
            await provider.load(ANA)
        # a record of another grain under this grain's name (a hash collision) is refused
        other = FileProvider(tmp_path / "h")
        await other.save(GrainId("Player", "ben"), b"ben", 0)
        ben_file = next(p for p in (tmp_path / "h").rglob("*.grain"))
        os.replace(ben_file, files[0])
        with pytest.raises(PersistenceError, match="holds grain Player/ben"):
            await provider.load(ANA)

    run(main())


def test_store_provider_reports_an_unreachable_store(tmp_path: Path) -> None:
    async def main() -> None:
        async with Client(["127.0.0.1:9"], timeout_s=0.5) as client:
            provider = StoreProvider(client)
            with pytest.raises(PersistenceError, match="load of grain Player/ana"):
                await provider.load(ANA)
            with pytest.raises(PersistenceError, match="save of grain Player/ana") as failed:
                await provider.save(ANA, b"x", 0)
            assert not failed.value.outcome_unknown  # nothing could have been sent

    run(main())

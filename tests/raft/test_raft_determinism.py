"""One seed gives byte-identical behaviour whatever the hash seed (architecture.md,
"Determinism hazards"): run a stress seed in two processes with different PYTHONHASHSEED
and compare the digests of everything the cores emitted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import hashlib, random, sys
sys.path[:0] = [{raft!r}, {tests!r}]
import test_raft_stress as t
from raft_harness import Cluster

seed = 7
rng = random.Random(seed)
cluster = Cluster(seed=seed)
config = t._config(rng)
cluster.run("add-nodes", ["5"])
for slot in cluster.slots.values():
    slot.config = config
for node_id in list(cluster.slots):
    cluster.slots[node_id].node = None
    cluster.start(node_id)
digest = hashlib.sha256()
original = cluster.collect
def collect(node_id):
    original(node_id)
    for line in cluster.lines:
        digest.update(line.encode())
    cluster.lines = []
cluster.collect = collect
t._safety_phase(cluster, rng, 600)
print(digest.hexdigest())
"""


def test_same_seed_same_run_across_hash_seeds() -> None:
    here = Path(__file__).resolve().parent
    code = SCRIPT.format(raft=str(here), tests=str(here.parent))
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1

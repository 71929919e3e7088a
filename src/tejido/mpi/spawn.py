"""``python -m tejido.mpi.spawn``: the remote end of `tejido mpirun --hostfile`.

Reads one JSON line from standard input, ``{"argv": [...], "env": {...}, "cwd": "..."}``
(written by the launcher through ssh, see `tejido.mpi.hostfile`), adds ``env`` to this
process's environment, changes to ``cwd`` when it exists, and replaces itself with
``argv``. The job's secret travels this way so that it never appears on a command line.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    line = sys.stdin.buffer.readline()
    try:
        spec = json.loads(line)
        argv = [str(a) for a in spec["argv"]]
        env = {str(k): str(v) for k, v in spec["env"].items()}
        cwd = str(spec.get("cwd", ""))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        sys.exit(f"tejido.mpi.spawn: bad launch request on stdin: {exc!r}")
    if not argv:
        sys.exit("tejido.mpi.spawn: empty command")
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    os.execvpe(argv[0], argv, {**os.environ, **env})  # noqa: S606 (the job's own command)


if __name__ == "__main__":
    main()

"""A command run by ``tejido lock`` in the real-process test: appends to a shared log file,
guarded by its fencing token (TEJIDO_FENCING_TOKEN).

The file is the protected resource; it keeps the highest token it has seen next to it and
refuses an older one (the `FencedResource` rule), checking and appending under ``flock``.
The first holder works slowly (it is the one the test stops). SIGTERM is ignored: a
stopped process cannot be told that its lease expired, so the fence must catch it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path

from tejido.recipes import FencedResource, StaleToken


def append(root: Path, token: int, what: str) -> bool:
    with open(root / "fence.lock", "a+") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        fence_file = root / "fence"
        fence = FencedResource(int(fence_file.read_text()) if fence_file.exists() else 0)
        line = f"{token} {what} {os.getppid()}\n"
        try:
            fence.admit(token)
        except StaleToken:
            with open(root / "rejected", "a") as rejected:
                rejected.write(line)
            return False
        fence_file.write_text(str(fence.highest))
        with open(root / "log", "a") as log:
            log.write(line)
        return True


def main() -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    root = Path(sys.argv[1])
    token = int(os.environ["TEJIDO_FENCING_TOKEN"])
    first = not (root / "fence").exists()
    if not append(root, token, "begin"):
        return 3
    time.sleep(3.0 if first else 0.05)  # the work itself (the first holder is slow)
    if not append(root, token, "end"):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

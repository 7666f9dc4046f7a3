"""``python -m livekit_drain_worker start``: the image's entrypoint."""

from __future__ import annotations

from livekit_drain_worker.app import main

# Job processes start from a forkserver; the guard keeps them from running the worker again.
if __name__ == "__main__":
    raise SystemExit(main())

"""The container health check: ``python -m livekit_drain_worker.healthcheck``.

livekit-agents serves ``GET /`` on its HTTP port (``LIVEKIT_HEALTH_PORT``, 8081 by default):
200 "OK" while the worker is healthy, 503 when it lost its LiveKit connection. The slim image
has no curl, so the check is this module, on the standard library alone.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from livekit_drain_worker.settings import DEFAULT_HEALTH_PORT, HEALTH_PORT_ENV

HEALTH_PATH = "/"


def healthy(port: int, *, host: str = "127.0.0.1", timeout_seconds: float = 3.0) -> bool:
    url = f"http://{host}:{port}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def main() -> int:
    raw = os.environ.get(HEALTH_PORT_ENV, "").strip()
    port = int(raw) if raw.isdigit() else DEFAULT_HEALTH_PORT
    return 0 if healthy(port) else 1


if __name__ == "__main__":
    sys.exit(main())

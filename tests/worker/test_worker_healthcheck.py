from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

from livekit_drain_worker.healthcheck import healthy


@contextmanager
def health_endpoint(status: int) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering GET / like livekit-agents' worker, with `status`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"OK" if status == 200 else b"failed to connect to livekit"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_healthy_worker_passes_the_health_check() -> None:
    # GIVEN a worker answering 200 "OK"
    with health_endpoint(200) as port:
        # WHEN the container health check runs
        result = healthy(port)

    # THEN it passes
    assert result is True


def test_worker_that_lost_livekit_fails_the_health_check() -> None:
    # GIVEN a worker answering 503 after its LiveKit connection failed
    with health_endpoint(503) as port:
        # WHEN the container health check runs
        result = healthy(port)

    # THEN it fails
    assert result is False


def test_worker_not_listening_fails_the_health_check() -> None:
    # GIVEN a port where nothing listens any more
    with health_endpoint(200) as port:
        pass

    # WHEN the container health check runs
    # THEN it fails
    assert healthy(port, timeout_seconds=2.0) is False

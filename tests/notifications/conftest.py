from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class PushReceiver:
    """A real HTTP server on the loopback interface standing in for a push gateway."""

    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    # Statuses to answer with, in order; 200 once they run out.
    answers: list[int] = field(default_factory=list)
    # Answer 503 once to the first push whose body contains this (pushes of one domain
    # event for several handlers arrive in any order).
    refuse_once_containing: bytes | None = None

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def push_receiver() -> Iterator[PushReceiver]:
    receiver = PushReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append((dict(self.headers), body))
            status = receiver.answers.pop(0) if receiver.answers else 200
            if receiver.refuse_once_containing and receiver.refuse_once_containing in body:
                receiver.refuse_once_containing, status = None, 503
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/push"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(10)

"""A scriptable HTTP server on 127.0.0.1 for client tests: real sockets, real streaming.

Each test registers handlers for (method, path); a handler gets the `Received` request and
returns a `Reply` whose body may be a list of chunks, sent one by one and flushed. Responses are
HTTP/1.0 with `Connection: close`, so a body ends when the server closes the connection: ending a
list of chunks early is how a test drops a stream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def multipart(self) -> dict[str, bytes]:
        """The parts of a multipart/form-data body, by field name."""
        content_type = self.headers["content-type"]
        boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
        parts: dict[str, bytes] = {}
        for raw in self.body.split(b"--" + boundary)[1:-1]:
            head, _, content = raw.partition(b"\r\n\r\n")
            disposition = next(
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-disp")
            )
            name = disposition.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
            parts[name] = content.removesuffix(b"\r\n")
        return parts


@dataclass
class Reply:
    status: int = 200
    body: bytes | list[bytes] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    pause: float = 0.0  # seconds to wait between chunks

    @classmethod
    def json(cls, value: Any, status: int = 200, **headers: str) -> Reply:
        return cls(status=status, body=json.dumps(value).encode(), headers=headers)

    @classmethod
    def problem(cls, status: int, code: str, detail: str, **headers: str) -> Reply:
        body = {"type": f"about:{code}", "title": code, "status": status, "detail": detail}
        return cls(
            status=status,
            body=json.dumps(body | {"code": code}).encode(),
            content_type="application/problem+json",
            headers=headers,
        )


Handler = Callable[[Received], Reply]


class FakeServer:
    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], Handler] = {}
        self.received: list[Received] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                request = Received(
                    method=self.command,
                    path=url.path,
                    query={key: values[-1] for key, values in parse_qs(url.query).items()},
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                server.received.append(request)
                handler = server.handlers.get((self.command, url.path))
                reply = (
                    handler(request)
                    if handler is not None
                    else Reply.problem(404, "not_found", "Not Found")
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Connection", "close")
                for name, value in reply.headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                chunks = [reply.body] if isinstance(reply.body, bytes) else reply.body
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if reply.pause:
                            time.sleep(reply.pause)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def on(self, method: str, path: str, handler: Handler | Reply) -> None:
        if isinstance(handler, Reply):
            reply = handler
            self.handlers[(method, path)] = lambda _request: reply
        else:
            self.handlers[(method, path)] = handler

    def requests_to(self, method: str, path: str) -> list[Received]:
        return [r for r in self.received if r.method == method and r.path == path]

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def sse(*events: tuple[str | None, str, str]) -> bytes:
    """Server-sent events from (id, type, data) triples."""
    out = []
    for event_id, event_type, data in events:
        head = f"id: {event_id}\n" if event_id is not None else ""
        out.append(f"{head}event: {event_type}\ndata: {data}\n\n")
    return "".join(out).encode()


def build(build_id: str = "b_1", status: str = "queued", **extra: Any) -> dict[str, Any]:
    """A build resource shaped like API.md's."""
    base = f"/api/v1/builds/{build_id}"
    resource: dict[str, Any] = {
        "id": build_id,
        "status": status,
        "phase": None,
        "created_at": "2026-11-27T08:00:00Z",
        "started_at": None,
        "finished_at": None,
        "source": {"filename": "app.zip", "size_bytes": 10, "sha256": "ab" * 32, "files": 1},
        "options": {
            "tag": None,
            "python_version": None,
            "run_tests": True,
            "test_command": None,
            "dockerfile": None,
            "context_dir": None,
            "build_args": {},
        },
        "image": None,
        "tests": None,
        "error": None,
        "links": {"self": base, "logs": f"{base}/logs", "dockerfile": f"{base}/dockerfile"},
        "phases": [],
    }
    resource.update(extra)
    return resource

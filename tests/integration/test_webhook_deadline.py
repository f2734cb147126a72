"""A webhook receiver that trickles its answer is cut at the delivery's deadline."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.conftest import test_settings
from worker.webhooks import post


@pytest.fixture
def trickler() -> Iterator[str]:
    """A receiver that sends its status line one byte every 0.2 s, never finishing: each read
    gets a byte well within any per-read timeout."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                # A valid start, then a header that never ends.
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    if stop.wait(0.2):
                        return
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    stop.set()
    thread.join(timeout=5)
    server.close()


class TestDeadline:
    def test_a_trickling_receiver_is_cut_at_the_deadline(
        self, trickler: str, tmp_path: Path
    ) -> None:
        settings: Settings = test_settings(
            tmp_path,
            webhook_allow_private_addresses=True,
            webhook_timeout_seconds=5.0,
            webhook_deadline_seconds=1.5,
        )
        with pytest.raises(httpx.TimeoutException, match="deadline"):
            post(trickler, b"{}", {"Content-Type": "application/json"}, settings=settings)

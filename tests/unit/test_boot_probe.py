"""worker.pipeline's boot wrapper and probe, run locally with sh and python (loopback only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from worker.pipeline import _BOOT_PROBE, _BOOT_WRAPPER


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def boot(command: list[str], port: int, seconds: float, tmp_path: Path) -> tuple[int, str]:
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    # The wrapper calls `python`, as in the image's venv.
    (shim / "python").symlink_to(sys.executable)
    env = os.environ | {
        "PATH": f"{shim}:{os.environ['PATH']}",
        "IMAGEBUILDER_PROBE": _BOOT_PROBE,
        "IMAGEBUILDER_PORT": str(port),
        "IMAGEBUILDER_BOOT_SECONDS": str(seconds),
    }
    result = subprocess.run(
        ["/bin/sh", "-c", _BOOT_WRAPPER, "imagebuilder-boot", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


class TestBootProbe:
    def test_a_server_that_answers_passes(self, tmp_path: Path) -> None:
        port = free_port()
        (tmp_path / "www").mkdir()
        command = [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"]
        command += ["--directory", str(tmp_path / "www")]

        code, output = boot(command, port, 20, tmp_path)

        assert code == 0, output
        assert f"boot check: HTTP 200 on port {port}" in output

    def test_any_http_status_counts_as_an_answer(self, tmp_path: Path) -> None:
        port = free_port()
        server = (
            "import http.server as h\n"
            "class H(h.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        self.send_error(404)\n"
            f"h.HTTPServer(('0.0.0.0', {port}), H).serve_forever()\n"
        )

        code, output = boot([sys.executable, "-c", server], port, 20, tmp_path)

        assert code == 0, output
        assert "HTTP 404" in output

    def test_a_process_that_exits_fails_with_its_output(self, tmp_path: Path) -> None:
        command = [sys.executable, "-c", "import sys; sys.exit('no DATABASE_URL')"]

        code, output = boot(command, free_port(), 20, tmp_path)

        assert code == 3
        assert "no DATABASE_URL" in output
        assert "exited before answering" in output

    def test_a_process_that_never_listens_fails_at_the_deadline(self, tmp_path: Path) -> None:
        command = [sys.executable, "-c", "import time; time.sleep(30)"]

        code, output = boot(command, free_port(), 1.5, tmp_path)

        assert code == 4
        assert "nothing answered" in output

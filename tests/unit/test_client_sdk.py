"""client.sdk and the commands for artifacts, webhooks and admin rebuilds, against a scripted
local server; and shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import cli, models
from client.api import ApiError
from client.sdk import Client
from tests.conftest import ROOT
from tests.unit.client_fakes import FakeServer, Received, Reply, build

B1 = "/api/v1/builds/b_1"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMAGEBUILDER_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("IMAGEBUILDER_URL", raising=False)
    monkeypatch.delenv("IMAGEBUILDER_TOKEN", raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


def run(server: FakeServer, *args: str) -> int:
    return cli.run([*args, "--url", server.url, "--token", "tok"])


class TestTypedModels:
    def test_a_build_parses_and_keeps_fields_a_newer_server_adds(self, server: FakeServer) -> None:
        server.on("GET", B1, Reply.json(build(status="succeeded", future_field={"x": 1})))
        with Client(server.url, "tok") as ib:
            parsed = ib.build("b_1")
        assert isinstance(parsed, models.Build)
        assert parsed.finished
        assert parsed.source.files == 1
        assert parsed.model_extra == {"future_field": {"x": 1}}
        assert server.received[0].headers["authorization"] == "Bearer tok"

    def test_an_answer_that_is_not_a_build_is_an_error(self, server: FakeServer) -> None:
        server.on("GET", B1, Reply.json({"id": "b_1", "status": "queued"}))
        with Client(server.url, "tok") as ib, pytest.raises(ApiError, match="created_at") as raised:
            ib.build("b_1")
        assert raised.value.code == "unexpected_response"

    def test_problems_become_api_errors_with_their_code(self, server: FakeServer) -> None:
        server.on("GET", B1 + "/sbom", Reply.problem(409, "artifact_not_available", "not yet"))
        with Client(server.url, "tok") as ib, pytest.raises(ApiError) as raised:
            ib.sbom("b_1")
        assert (raised.value.status, raised.value.code) == (409, "artifact_not_available")

    def test_webhook_rotation_and_admin_rebuild_send_what_the_api_expects(
        self, server: FakeServer
    ) -> None:
        hook = {"owner": "o", "url": "https://h.example/x", "secret": "whsec_a", "new": 1}
        server.on("PUT", "/api/v1/owner/webhook", Reply.json(hook))
        bulk = {
            "base_digest": DIGEST,
            "queued": [{"id": "b_2", "rebuild_of": "b_1"}],
            "skipped": [],
        }
        server.on("POST", "/api/v1/admin/rebuild", Reply.json(bulk, status=202))
        with Client(server.url, "tok") as ib:
            webhook = ib.set_webhook(
                "https://h.example/x", rotate_secret=True, previous_secret_seconds=60
            )
            report = ib.rebuild_on_base(DIGEST)
        assert webhook.secret == "whsec_a"
        assert report.queued[0].rebuild_of == "b_1"
        (put,) = server.requests_to("PUT", "/api/v1/owner/webhook")
        assert json.loads(put.body) == {
            "url": "https://h.example/x",
            "rotate_secret": True,
            "previous_secret_seconds": 60,
        }
        (post,) = server.requests_to("POST", "/api/v1/admin/rebuild")
        assert post.query == {"base_digest": DIGEST}


class TestArtifactCommands:
    def test_sbom_is_written_to_the_file_asked_for(
        self, server: FakeServer, tmp_path: Path
    ) -> None:
        document = {"bomFormat": "CycloneDX", "components": []}
        server.on("GET", B1 + "/sbom", Reply.json(document))
        out = tmp_path / "sbom.json"
        assert run(server, "sbom", "b_1", "-o", str(out)) == 0
        assert json.loads(out.read_text()) == document

    def test_image_download_streams_into_the_file(self, server: FakeServer, tmp_path: Path) -> None:
        chunks = [b"tar" * 1000, b"more" * 1000]
        server.on("GET", B1 + "/image", Reply(body=chunks, content_type="application/x-tar"))
        out = tmp_path / "image.tar"
        assert run(server, "image", "b_1", "-o", str(out)) == 0
        assert out.read_bytes() == b"".join(chunks)
        assert not (tmp_path / "image.tar.part").exists()

    def test_a_refused_download_leaves_no_file_and_exits_5(
        self, server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("GET", B1 + "/image", Reply.problem(409, "image_unavailable", "gone"))
        out = tmp_path / "image.tar"
        assert run(server, "image", "b_1", "-o", str(out)) == 5
        assert not out.exists()
        assert not (tmp_path / "image.tar.part").exists()
        assert "image_unavailable" in capsys.readouterr().err

    def test_admin_rebuild_reports_what_was_queued(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bulk = {
            "base_digest": DIGEST,
            "queued": [{"id": "b_2", "rebuild_of": "b_1"}],
            "skipped": [{"id": "b_0", "reason": "source no longer stored"}],
        }

        def reply(request: Received) -> Reply:
            assert request.query["base_digest"] == DIGEST
            return Reply.json(bulk, status=202)

        server.on("POST", "/api/v1/admin/rebuild", reply)
        assert run(server, "admin", "rebuild", "--base-digest", DIGEST) == 0
        out = capsys.readouterr().out
        assert "queued b_2 (rebuild of b_1)" in out
        assert "skipped b_0: source no longer stored" in out

    def test_webhook_set_needs_a_url_or_remove(self, server: FakeServer) -> None:
        assert run(server, "webhook", "set") == 5
        assert server.received == []


class TestShellCompletion:
    def test_commands_complete_in_bash(self) -> None:
        env = os.environ | {
            "_IMAGEBUILDER_COMPLETE": "complete_bash",
            "COMP_WORDS": "imagebuilder web",
            "COMP_CWORD": "1",
            "PYTHONPATH": str(ROOT),
        }
        script = "import sys; from client.cli import main; sys.argv[0] = 'imagebuilder'; main()"
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
        )
        assert done.stdout.split() == ["webhook"], done.stderr

    def test_completion_options_are_offered(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.run(["--help"]) == 0
        out = capsys.readouterr().out
        assert "--install-completion" in out
        assert "--show-completion" in out

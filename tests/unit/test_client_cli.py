"""client.cli: the commands against a scripted local server, run in-process."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client import cli, render
from client.exitcodes import ExitCode, for_status
from client.follow import LogFollower, LogLine
from tests.unit.client_fakes import FakeServer, Received, Reply, build, sse

BUILDS = "/api/v1/builds"
SSE = "text/event-stream"
ESC = "\x1b"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config file, no ambient URL or token."""
    monkeypatch.setenv("IMAGEBUILDER_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("IMAGEBUILDER_URL", raising=False)
    monkeypatch.delenv("IMAGEBUILDER_TOKEN", raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        # What submit and plan ask first, to check the URL and token before packing.
        fake.on("GET", BUILDS, Reply.json({"items": [], "next_cursor": None}))
        yield fake


def run(server: FakeServer | None, *args: str, token: str | None = "tok") -> int:
    argv = list(args)
    if server is not None:
        argv += ["--url", server.url]
    if token is not None:
        argv += ["--token", token]
    return cli.run(argv)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "my project"
    (root / "tests").mkdir(parents=True)
    (root / "app.py").write_text("print('hello')\n")
    (root / "tests" / "test_app.py").write_text("def test_ok():\n    pass\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    (root / ".gitignore").write_text("*.log\n")
    (root / "debug.log").write_text("noise\n")
    return root


def finished(status: str, **extra: Any) -> dict[str, Any]:
    return build(
        "b_1",
        status,
        started_at="2026-11-27T08:00:01Z",
        finished_at="2026-11-27T08:00:31Z",
        **extra,
    )


def events_then_end(status: str, *lines: str) -> Reply:
    events = [(str(n), "build", text) for n, text in enumerate(lines, start=1)]
    return Reply(body=sse(*events, (None, "end", status)), content_type=SSE)


class TestExitCodes:
    @pytest.mark.parametrize(
        ("status", "code"),
        [
            ("succeeded", 0),
            ("failed", 1),
            ("error", 2),
            ("timed_out", 3),
            ("cancelled", 4),
            ("running", 5),
            ("something_new", 5),
        ],
    )
    def test_for_status(self, status: str, code: int) -> None:
        assert for_status(status) == code

    @pytest.mark.parametrize("status", ["succeeded", "failed", "error", "timed_out", "cancelled"])
    def test_following_exits_with_the_builds_code(
        self, server: FakeServer, status: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("GET", f"{BUILDS}/b_1/logs", events_then_end(status, "step 1", "step 2"))
        server.on("GET", f"{BUILDS}/b_1", Reply.json(finished(status)))

        code = run(server, "logs", "b_1", "--follow")

        assert code == for_status(status)
        out = capsys.readouterr().out
        assert "step 1\nstep 2\n" in out
        assert f"Build b_1 {status}" in out

    def test_help_documents_the_exit_codes(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.run(["submit", "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for phrase in ("0 succeeded", "1 build failed", "2 build error", "3 timed out"):
            assert phrase in text
        assert "4 cancelled" in text
        assert "5 usage, configuration, connection or HTTP error" in text

    @pytest.mark.parametrize(
        "argv",
        [["nonsense"], ["list", "--limit", "0"], ["list", "--status", "nope"], ["status"]],
    )
    def test_usage_errors_exit_5_not_2(self, argv: list[str]) -> None:
        # 2 means "the build ended in error"; click's usual 2 would lie to a CI script.
        assert cli.run(argv) == ExitCode.CLIENT


class TestSubmit:
    def test_detach_uploads_the_packed_folder_with_options(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("POST", BUILDS, Reply.json(build("b_new"), status=202))

        code = run(
            server,
            "submit",
            str(project),
            "--tag",
            "app:1",
            "--python",
            "3.12",
            "--no-tests",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B=x=y",
            "--detach",
            "--json",
        )

        assert code == 0
        out = capsys.readouterr().out
        assert json.loads(out)["id"] == "b_new"
        (upload,) = server.requests_to("POST", BUILDS)
        assert upload.headers["authorization"] == "Bearer tok"
        parts = upload.multipart()
        assert parts["tag"] == b"app:1"
        assert parts["python_version"] == b"3.12"
        assert parts["run_tests"] == b"false"
        assert json.loads(parts["build_args"]) == {"A": "1", "B": "x=y"}
        with zipfile.ZipFile(io.BytesIO(parts["source"])) as archive:
            assert sorted(archive.namelist()) == [".gitignore", "app.py", "tests/test_app.py"]
        assert b'filename="my-project.zip"' in upload.body

    def test_follow_streams_the_log_and_ends_with_a_summary(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("POST", BUILDS, Reply.json(build("b_1"), status=202))
        server.on("GET", f"{BUILDS}/b_1/logs", events_then_end("failed", "collecting", "1 failed"))
        summary = finished(
            "failed",
            tests={
                "command": "python -m pytest",
                "exit_code": 1,
                "passed": 3,
                "failed": 1,
                "errors": 0,
                "skipped": 0,
            },
            error={"code": "tests_failed", "message": "1 test failed"},
            phases=[
                {"phase": "preparing", "duration_seconds": 0.5},
                {"phase": "building", "duration_seconds": 20.25},
                {"phase": "testing", "duration_seconds": 9.0},
            ],
        )
        server.on("GET", f"{BUILDS}/b_1", Reply.json(summary))

        code = run(server, "submit", str(project))

        assert code == ExitCode.FAILED
        captured = capsys.readouterr()
        lines = captured.out.splitlines()
        assert lines[0] == f"Build b_1 queued: {server.url}/builds/b_1"
        assert lines[1:3] == ["collecting", "1 failed"]
        assert "Build b_1 failed" in captured.out
        assert "3 passed · 1 failed · 0 errors · 0 skipped" in captured.out
        assert "preparing 0.5s · building 20.2s · testing 9.0s" in captured.out
        assert "tests_failed: 1 test failed" in captured.out
        assert "Duration  30.0s" in captured.out
        assert "Packed 3 files" in captured.err

    def test_a_reused_result_and_what_changed_are_in_the_summary(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("POST", BUILDS, Reply.json(build("b_2"), status=202))
        server.on("GET", f"{BUILDS}/b_2/logs", events_then_end("succeeded", "reused"))
        summary = finished(
            "succeeded",
            reused_from="b_1",
            changes={
                "previous": "b_0",
                "size_bytes_delta": 2048,
                "packages": {
                    "added": [{"type": "pypi", "name": "rich", "version": "13.0"}],
                    "removed": [],
                    "changed": [{"type": "pypi", "name": "flask", "from": "2.3", "to": "3.0"}],
                },
                "advisories": {"new": [], "fixed": [{"id": "GHSA-1", "package": "flask"}]},
            },
        )
        server.on("GET", f"{BUILDS}/b_2", Reply.json(summary))

        code = run(server, "submit", str(project), "--no-cache")

        assert code == 0
        out = capsys.readouterr().out
        assert "Reused    the result of b_1 (same inputs; nothing rebuilt)" in out
        assert "since b_0; size +2.0 KiB; packages 1 added, 0 removed, 1 changed" in out
        assert "flask 2.3→3.0; advisories 0 new, 1 fixed" in out
        (upload,) = server.requests_to("POST", BUILDS)
        assert upload.multipart()["no_cache"] == b"true"

    def test_json_follow_keeps_stdout_for_the_final_build(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("POST", BUILDS, Reply.json(build("b_1"), status=202))
        server.on("GET", f"{BUILDS}/b_1/logs", events_then_end("succeeded", "log line"))
        server.on("GET", f"{BUILDS}/b_1", Reply.json(finished("succeeded")))

        assert run(server, "submit", str(project), "--json") == 0

        captured = capsys.readouterr()
        assert json.loads(captured.out)["status"] == "succeeded"
        assert "log line" in captured.err

    def test_dry_run_lists_files_and_uploads_nothing(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(server, "submit", str(project), "--dry-run", "--json") == 0

        listing = json.loads(capsys.readouterr().out)
        assert [f["path"] for f in listing["files"]] == [
            ".gitignore",
            "app.py",
            "tests/test_app.py",
        ]
        assert listing["ignored"] == 2  # .git and debug.log
        assert server.received == []

    def test_a_refused_token_stops_before_packing(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("GET", BUILDS, Reply.problem(401, "unauthenticated", "The token is unknown."))

        assert run(server, "submit", str(project)) == ExitCode.CLIENT

        assert server.requests_to("POST", BUILDS) == []
        assert "Packed" not in capsys.readouterr().err

    def test_build_arg_without_value_comes_from_the_environment(
        self,
        server: FakeServer,
        project: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        server.on("POST", BUILDS, Reply.json(build("b_1"), status=202))
        monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.internal/simple")

        assert run(server, "submit", str(project), "--build-arg", "PIP_INDEX_URL", "--detach") == 0
        assert run(server, "submit", str(project), "--build-arg", "UNSET_VAR", "--detach") == 5

        parts = server.requests_to("POST", BUILDS)[0].multipart()
        assert json.loads(parts["build_args"]) == {"PIP_INDEX_URL": "https://pypi.internal/simple"}

    def test_rejected_upload_prints_the_problem(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on(
            "POST",
            BUILDS,
            Reply.problem(422, "invalid_option", "tag must be a Docker reference"),
        )

        assert run(server, "submit", str(project), "--tag", "Bad Tag") == ExitCode.CLIENT

        err = capsys.readouterr().err
        assert "error: tag must be a Docker reference (invalid_option)" in err
        assert "Traceback" not in err

    def test_missing_folder_is_a_clear_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert cli.run(["submit", str(tmp_path / "nope")]) == ExitCode.CLIENT

        assert "does not exist" in capsys.readouterr().err


class TestInterrupt:
    def test_ctrl_c_while_following_detaches_without_cancelling(
        self,
        server: FakeServer,
        project: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        server.on("POST", BUILDS, Reply.json(build("b_1", "running"), status=202))

        def interrupted(self: LogFollower) -> Iterator[LogLine]:
            yield LogLine(seq=1, stream="build", text="working")
            raise KeyboardInterrupt

        monkeypatch.setattr(LogFollower, "__iter__", interrupted)

        code = run(server, "submit", str(project))

        assert code == ExitCode.INTERRUPTED
        err = capsys.readouterr().err
        assert "keeps running on the server (not cancelled)" in err
        assert "imagebuilder logs b_1 --follow" in err
        assert server.requests_to("POST", f"{BUILDS}/b_1/cancel") == []


class TestOtherCommands:
    def test_status_shows_the_build(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        running = build("b_1", "running", phase="testing", started_at="2026-11-27T08:00:01Z")
        server.on("GET", f"{BUILDS}/b_1", Reply.json(running))

        assert run(server, "status", "b_1") == 0

        captured = capsys.readouterr()
        assert "Build b_1 running (testing)" in captured.out
        assert "imagebuilder logs b_1 --follow" in captured.err

    def test_list_passes_filters_and_shows_the_next_page(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        page = {
            "items": [
                finished("failed", error={"code": "tests_failed", "message": "x"}),
                build("b_2", "queued", options={"tag": "web:2"}),
            ],
            "next_cursor": "c_2",
        }
        server.on("GET", BUILDS, Reply.json(page))

        assert run(server, "list", "--status", "failed", "--limit", "2") == 0

        captured = capsys.readouterr()
        assert server.requests_to("GET", BUILDS)[0].query == {"status": "failed", "limit": "2"}
        assert "tests_failed" in captured.out
        assert "web:2" in captured.out
        assert "imagebuilder list --cursor c_2" in captured.err

    def test_list_json(self, server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
        server.on("GET", BUILDS, Reply.json({"items": [build("b_1")], "next_cursor": None}))

        assert run(server, "list", "--json") == 0

        assert json.loads(capsys.readouterr().out)["items"][0]["id"] == "b_1"

    def test_logs_without_follow_prints_the_stored_log(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("GET", f"{BUILDS}/b_1/logs", Reply(body=b"a\nb\n", content_type="text/plain"))

        assert run(server, "logs", "b_1") == 0

        assert capsys.readouterr().out == "a\nb\n"

    def test_logs_json_lines(self, server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
        server.on("GET", f"{BUILDS}/b_1/logs", events_then_end("timed_out", "x"))
        server.on("GET", f"{BUILDS}/b_1", Reply.json(finished("timed_out")))

        assert run(server, "logs", "b_1", "--follow", "--json") == ExitCode.TIMED_OUT

        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line) for line in lines] == [{"seq": 1, "stream": "build", "text": "x"}]

    def test_cancel_and_a_second_cancel(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        calls = iter(
            [
                Reply.json(build("b_1", "running", cancel_requested=True), status=202),
                Reply.problem(409, "build_terminal", "Build b_1 already ended as cancelled."),
            ]
        )
        server.on("POST", f"{BUILDS}/b_1/cancel", lambda _request: next(calls))

        assert run(server, "cancel", "b_1") == 0
        assert "Cancel requested for build b_1" in capsys.readouterr().out
        assert run(server, "cancel", "b_1") == ExitCode.CLIENT
        assert (
            "error: Build b_1 already ended as cancelled. (build_terminal)"
            in capsys.readouterr().err
        )

    def test_rebuild_detached(self, server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
        server.on(
            "POST",
            f"{BUILDS}/b_1/rebuild",
            Reply.json(build("b_2", rebuild_of="b_1"), status=202),
        )

        assert run(server, "rebuild", "b_1", "--detach") == 0

        assert "Build b_2 queued" in capsys.readouterr().out

    def test_plan_on_a_server_without_the_route(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(server, "plan", str(project)) == ExitCode.CLIENT

        err = capsys.readouterr().err
        assert "cannot show plans" in err
        assert "(plan_unsupported)" in err

    def test_plan_shows_the_decisions(
        self, server: FakeServer, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        plan = {"python_version": "3.11", "reasons": ["python 3.11: the service default"]}
        server.on("POST", "/api/v1/plan", Reply.json({"plan": plan}))

        assert run(server, "plan", str(project)) == 0

        out = capsys.readouterr().out
        assert "python_version  3.11" in out
        assert "- python 3.11: the service default" in out

    def test_tokens_create_prints_the_secret_alone_on_stdout(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        created = {"id": "t_1", "owner": "ci", "admin": False, "prefix": "ib_x", "token": "ib_s"}
        server.on("POST", "/api/v1/tokens", Reply.json(created, status=201))

        assert run(server, "tokens", "create", "--owner", "ci") == 0

        captured = capsys.readouterr()
        assert captured.out == "ib_s\n"
        assert "shown only this once" in captured.err
        assert json.loads(server.received[0].body) == {"owner": "ci", "admin": False}

    def test_tokens_list_and_revoke(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on(
            "GET", "/api/v1/tokens", Reply.json([{"id": "t_1", "owner": "ci", "admin": True}])
        )
        server.on("DELETE", "/api/v1/tokens/t_1", Reply(status=204))

        assert run(server, "tokens", "list") == 0
        assert "ci" in capsys.readouterr().out
        assert run(server, "tokens", "revoke", "t_1") == 0
        assert "Revoked token t_1." in capsys.readouterr().out


INDEX_URL = "https://pypi.corp.example/simple"
INDEX: dict[str, Any] = {
    "name": "corp",
    "owner": "alice",
    "url": INDEX_URL,
    "default": False,
    "has_credentials": True,
    "created_at": "2026-12-02T10:00:00Z",
    "updated_at": "2026-12-02T10:00:00Z",
}


class TestIndexes:
    def test_put_reads_the_password_from_stdin_never_argv(
        self,
        server: FakeServer,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        server.on("PUT", "/api/v1/owner/indexes/corp", Reply.json(INDEX))
        monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-from-stdin\n"))
        argv = ["indexes", "put", "corp", INDEX_URL, "-u", "ci", "--password-stdin"]

        assert run(server, *argv) == 0

        sent = server.received[-1]
        assert json.loads(sent.body) == {
            "url": INDEX_URL,
            "default": False,
            "username": "ci",
            "password": "s3cret-from-stdin",
        }
        out = capsys.readouterr().out
        assert "corp" in out
        assert "stored" in out
        assert "s3cret" not in out

    def test_put_prompts_for_the_password_without_echo(
        self, server: FakeServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        server.on("PUT", "/api/v1/owner/indexes/corp", Reply.json(INDEX))
        asked: list[dict[str, Any]] = []

        def prompt(text: str, **options: Any) -> str:
            asked.append(options)
            return "typed-secret"

        monkeypatch.setattr("typer.prompt", prompt)

        assert run(server, "indexes", "put", "corp", INDEX_URL, "--username", "ci") == 0

        assert asked == [{"hide_input": True, "err": True}]
        assert json.loads(server.received[-1].body)["password"] == "typed-secret"

    def test_put_without_username_sends_no_credentials(self, server: FakeServer) -> None:
        server.on("PUT", "/api/v1/owner/indexes/mirror", Reply.json(INDEX | {"name": "mirror"}))

        argv = ["indexes", "put", "mirror", INDEX_URL, "--default", "--owner", "_global"]
        assert run(server, *argv) == 0

        sent = server.received[-1]
        assert json.loads(sent.body) == {"url": INDEX_URL, "default": True}
        assert sent.query == {"owner": "_global"}

    def test_list_and_delete(self, server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
        server.on("GET", "/api/v1/owner/indexes", Reply.json([INDEX]))
        server.on("DELETE", "/api/v1/owner/indexes/corp", Reply(status=204))

        assert run(server, "indexes", "list", "--json") == 0
        assert json.loads(capsys.readouterr().out) == [INDEX]
        assert run(server, "indexes", "delete", "corp", "--owner", "alice") == 0
        assert "Removed package index corp." in capsys.readouterr().out
        assert server.received[-1].query == {"owner": "alice"}


class TestErrors:
    def test_unauthenticated_gets_a_hint(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("GET", BUILDS, Reply.problem(401, "unauthenticated", "Send a valid token."))

        assert run(server, "list", token=None) == ExitCode.CLIENT

        err = capsys.readouterr().err
        assert "error: Send a valid token. (unauthenticated)" in err
        assert "hint: set a token" in err

    def test_unreachable_server(self, capsys: pytest.CaptureFixture[str]) -> None:
        with FakeServer() as gone:
            url = gone.url

        assert cli.run(["status", "b_1", "--url", url]) == ExitCode.CLIENT

        assert "(connection_failed)" in capsys.readouterr().err

    def test_bad_config_is_reported(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = tmp_path / "bad.toml"
        config.write_text("url = [")
        monkeypatch.setenv("IMAGEBUILDER_CONFIG", str(config))

        assert cli.run(["list"]) == ExitCode.CLIENT

        assert "(config_invalid)" in capsys.readouterr().err

    def test_a_bug_is_one_error_line_not_a_traceback(
        self,
        server: FakeServer,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        def broken(*_args: object) -> None:
            raise TypeError("boom")

        server.on("GET", f"{BUILDS}/b_1", Reply.json(build("b_1")))
        monkeypatch.setattr(render, "details", broken)

        assert run(server, "status", "b_1") == ExitCode.CLIENT

        err = capsys.readouterr().err
        assert "error: unexpected failure: TypeError: boom (internal)" in err
        assert "Traceback" not in err
        monkeypatch.setenv("IMAGEBUILDER_DEBUG", "1")
        with pytest.raises(TypeError):
            run(server, "status", "b_1")

    def test_url_and_token_from_the_environment(
        self, server: FakeServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("IMAGEBUILDER_URL", server.url)
        monkeypatch.setenv("IMAGEBUILDER_TOKEN", "env-token")
        server.on("GET", BUILDS, Reply.json({"items": [], "next_cursor": None}))

        assert cli.run(["list"]) == 0

        assert server.received[0].headers["authorization"] == "Bearer env-token"


class TestHostileServerText:
    def test_escape_sequences_from_the_server_never_reach_the_terminal(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        osc = "\x1b]52;c;cm0gLXJmIH4=\x07"
        hostile = finished(
            "failed",
            image={"tag": f"app{osc}:1", "id": "sha256:" + "a" * 64, "size_bytes": 1},
            error={"code": "tests_failed\x1b[2J", "message": "boom\x1b]0;title\x07\r\x1b[1A"},
        )

        def logs(_request: Received) -> Reply:
            return Reply(
                body=sse(
                    (
                        "1",
                        "build",
                        "\x1b[31mred\x1b[0m \x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\",
                    ),
                    ("2", "test", "\x9b2J8-bit"),
                    (None, "end", "failed"),
                ),
                content_type=SSE,
            )

        server.on("GET", f"{BUILDS}/b_1/logs", logs)
        server.on("GET", f"{BUILDS}/b_1", Reply.json(hostile))

        assert run(server, "logs", "b_1", "--follow") == ExitCode.FAILED

        captured = capsys.readouterr()
        assert ESC not in captured.out + captured.err
        assert "\x9b" not in captured.out
        assert "red link" in captured.out
        assert "8-bit" in captured.out
        assert "boom\\x0d" in captured.out

    def test_problem_details_are_neutralised_too(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on(
            "GET",
            f"{BUILDS}/b_1",
            Reply.problem(404, "build_not_found\x1b[8m", "No build\x1b]0;x\x07 here."),
        )

        assert run(server, "status", "b_1") == ExitCode.CLIENT

        err = capsys.readouterr().err
        assert ESC not in err
        assert "error: No build here. (build_not_found)" in err

    def test_json_output_escapes_control_characters(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.on("GET", f"{BUILDS}/b_1", Reply.json(build("b_1", options={"tag": "a\x1b[2Jb"})))

        assert run(server, "status", "b_1", "--json") == 0

        out = capsys.readouterr().out
        assert ESC not in out
        assert json.loads(out)["options"]["tag"] == "a\x1b[2Jb"

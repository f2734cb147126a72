"""The HTTP API over a real SQLite database and a real Redis broker (no worker runs here)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import httpx2
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from adapters.broker import QUEUE
from app.main import create_app
from core.db import session_scope
from core.models import Build
from core.settings import Settings
from core.status import BuildStatus
from core.transitions import transition
from tests.conftest import ADMIN_TOKEN, zip_project

PROBLEM = "application/problem+json"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(settings: Settings, sqlite_engine: Engine, redis_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield test_client


def queued_messages(redis_url: str) -> list[str]:
    """Build ids of the messages waiting in the broker."""
    client = redis.Redis.from_url(redis_url)
    raw = client.lrange(QUEUE, 0, -1)
    client.close()
    # Kombu pushes on the left: the oldest message is last.
    return [json.loads(m)["headers"]["argsrepr"].strip("[]()',") for m in reversed(raw)]


def build_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(Build)) or 0


def submit(client: TestClient, data: bytes, **fields: str) -> dict[str, object]:
    response = client.post("/api/v1/builds", files={"source": ("p.zip", data)}, data=fields)
    assert response.status_code == 202, response.text
    body: dict[str, object] = response.json()
    return body


def assert_problem(response: httpx2.Response, status: int, code: str) -> None:
    assert hasattr(response, "status_code")
    assert hasattr(response, "json")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["detail"]
    assert body["title"]
    assert body["type"]


class TestSubmit:
    def test_multipart_upload_queues_a_build(
        self, client: TestClient, sqlite_engine: Engine, redis_url: str
    ) -> None:
        response = client.post(
            "/api/v1/builds",
            files={"source": ("passing.zip", zip_project("passing"))},
            data={"tag": "myapp:1.2", "build_args": '{"A": "1"}', "run_tests": "false"},
        )
        assert response.status_code == 202, response.text
        build = response.json()
        assert build["id"].startswith("b_")
        assert response.headers["location"] == f"/api/v1/builds/{build['id']}"
        assert build["status"] == "queued"
        assert build["options"]["tag"] == "myapp:1.2"
        assert build["options"]["build_args"] == {"A": "1"}
        assert build["options"]["run_tests"] is False
        assert build["source"]["filename"] == "passing.zip"
        assert build["source"]["files"] == 3
        assert len(build["source"]["sha256"]) == 64
        assert build["image"] is None
        assert build["tests"] is None
        assert build["error"] is None
        assert queued_messages(redis_url) == [build["id"]]
        assert build_count(sqlite_engine) == 1

    def test_raw_zip_body_with_query_options(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/builds?python_version=3.11&context_dir=app",
            content=zip_project("passing", prefix="app/"),
            headers={"content-type": "application/zip"},
        )
        assert response.status_code == 202, response.text
        assert response.json()["options"]["python_version"] == "3.11"
        assert response.json()["options"]["context_dir"] == "app"

    def test_chunked_upload_without_length(self, client: TestClient) -> None:
        data = zip_project("passing")

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), 100):
                yield data[start : start + 100]

        response = client.post(
            "/api/v1/builds", content=chunks(), headers={"content-type": "application/zip"}
        )
        assert response.status_code == 202, response.text
        assert response.json()["source"]["size_bytes"] == len(data)

    def test_default_tag_names_the_build(self, client: TestClient) -> None:
        build = submit(client, zip_project("passing"))
        assert build["options"]["tag"] is None  # type: ignore[index]
        build_id = str(build["id"])
        got = client.get(f"/api/v1/builds/{build_id}").json()
        assert got["id"] == build_id


class TestSubmitRejections:
    def test_over_the_size_limit_with_a_length(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        small = settings.model_copy(update={"max_upload_bytes": 1000})
        with TestClient(create_app(small), headers=AUTH) as client:
            response = client.post(
                "/api/v1/builds",
                content=b"x" * 200_000,
                headers={"content-type": "application/zip"},
            )
        assert_problem(response, 413, "upload_too_large")
        assert list(small.uploads_dir.glob("*")) == []

    def test_over_the_size_limit_while_streaming(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        small = settings.model_copy(update={"max_upload_bytes": 1000})

        def endless() -> Iterator[bytes]:
            for _ in range(100):
                yield b"x" * 100

        with TestClient(create_app(small), headers=AUTH) as client:
            response = client.post(
                "/api/v1/builds", content=endless(), headers={"content-type": "application/zip"}
            )
        assert_problem(response, 413, "upload_too_large")
        assert list(small.uploads_dir.glob("*")) == []
        assert build_count(sqlite_engine) == 0

    def test_not_a_zip(self, client: TestClient, sqlite_engine: Engine) -> None:
        response = client.post("/api/v1/builds", files={"source": ("x.zip", b"not a zip")})
        assert_problem(response, 400, "archive_invalid")
        assert build_count(sqlite_engine) == 0

    def test_path_traversal(self, client: TestClient, sqlite_engine: Engine) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", "print(1)\n")
            archive.writestr("../evil.py", "print(2)\n")
        response = client.post("/api/v1/builds", files={"source": ("x.zip", buffer.getvalue())})
        assert_problem(response, 400, "archive_path_traversal")
        assert build_count(sqlite_engine) == 0

    def test_not_a_python_project(self, client: TestClient) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("README.md", "hello\n")
        response = client.post("/api/v1/builds", files={"source": ("x.zip", buffer.getvalue())})
        assert_problem(response, 400, "project_unrecognized")

    def test_wrong_content_type(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/builds", content=b"{}", headers={"content-type": "application/json"}
        )
        assert_problem(response, 415, "unsupported_media_type")

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("tag", "Not A Tag"),
            ("python_version", "2.7"),
            ("context_dir", "../up"),
            ("build_args", "[1, 2]"),
            ("build_args", "{not json"),
            ("run_tests", "perhaps"),
            ("unknown_option", "1"),
        ],
    )
    def test_invalid_option_changes_nothing(
        self, client: TestClient, sqlite_engine: Engine, settings: Settings, field: str, value: str
    ) -> None:
        response = client.post(
            "/api/v1/builds",
            files={"source": ("p.zip", zip_project("passing"))},
            data={field: value},
        )
        assert_problem(response, 422, "invalid_option")
        assert build_count(sqlite_engine) == 0
        assert list(settings.uploads_dir.glob("*")) == []

    def test_multipart_without_the_file(self, client: TestClient) -> None:
        response = client.post("/api/v1/builds", data={"tag": "x"}, files={"other": ("a", b"b")})
        assert_problem(response, 422, "invalid_option")


class TestReadRoutes:
    def test_unknown_build_is_404_problem(self, client: TestClient) -> None:
        for path in ("", "/logs", "/dockerfile"):
            assert_problem(client.get(f"/api/v1/builds/b_nope{path}"), 404, "build_not_found")
        assert_problem(client.post("/api/v1/builds/b_nope/cancel"), 404, "build_not_found")

    def test_list_paginates_and_filters(self, client: TestClient) -> None:
        ids = [str(submit(client, zip_project("passing"))["id"]) for _ in range(3)]
        first = client.get("/api/v1/builds?limit=2").json()
        assert [item["id"] for item in first["items"]] == ids[::-1][:2]
        rest = client.get(f"/api/v1/builds?limit=2&cursor={first['next_cursor']}").json()
        assert [item["id"] for item in rest["items"]] == ids[:1]
        assert rest["next_cursor"] is None
        assert client.get("/api/v1/builds?status=succeeded").json()["items"] == []
        assert_problem(client.get("/api/v1/builds?limit=101"), 422, "invalid_option")
        assert_problem(client.get("/api/v1/builds?status=bogus"), 422, "invalid_option")

    def test_logs_download_as_an_attachment(self, client: TestClient) -> None:
        build_id = submit(client, zip_project("passing"))["id"]
        response = client.get(f"/api/v1/builds/{build_id}/logs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["content-disposition"] == f'attachment; filename="{build_id}.log"'

    def test_dockerfile_is_not_ready_before_the_build_starts(self, client: TestClient) -> None:
        build_id = submit(client, zip_project("passing"))["id"]
        assert_problem(
            client.get(f"/api/v1/builds/{build_id}/dockerfile"), 404, "dockerfile_not_ready"
        )


class TestCancelAndRebuild:
    def test_cancel_queued_then_409(self, client: TestClient) -> None:
        build_id = submit(client, zip_project("passing"))["id"]
        response = client.post(f"/api/v1/builds/{build_id}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "cancelled"
        assert_problem(client.post(f"/api/v1/builds/{build_id}/cancel"), 409, "build_terminal")

    def test_cancel_running_marks_the_request(
        self, client: TestClient, sqlite_engine: Engine
    ) -> None:
        build_id = str(submit(client, zip_project("passing"))["id"])
        with session_scope(sqlite_engine) as session:
            transition(session, build_id, BuildStatus.RUNNING)
        response = client.post(f"/api/v1/builds/{build_id}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "running"
        assert response.json()["cancel_requested"] is True

    def test_rebuild_makes_a_new_build_from_the_same_source(
        self, client: TestClient, redis_url: str
    ) -> None:
        original = submit(client, zip_project("passing"), tag="app:1")
        response = client.post(f"/api/v1/builds/{original['id']}/rebuild")
        assert response.status_code == 202
        rebuilt = response.json()
        assert rebuilt["id"] != original["id"]
        assert rebuilt["rebuild_of"] == original["id"]
        assert rebuilt["source"] == original["source"]
        assert rebuilt["options"] == original["options"]
        assert response.headers["location"] == f"/api/v1/builds/{rebuilt['id']}"
        assert queued_messages(redis_url) == [original["id"], rebuilt["id"]]


class TestHealth:
    def test_healthz(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}

    def test_readyz_says_which_dependency_is_down(
        self, settings: Settings, sqlite_engine: Engine
    ) -> None:
        broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
        with TestClient(create_app(broken)) as client:
            response = client.get("/readyz")
        assert_problem(response, 503, "unavailable")
        assert response.json()["checks"]["broker"].startswith("unavailable")
        assert response.json()["checks"]["database"] == "ok"
        assert response.headers["retry-after"]

    def test_openapi_documents_every_route(self, client: TestClient) -> None:
        spec = client.get("/openapi.json").json()
        paths = spec["paths"]
        for path in (
            "/api/v1/builds",
            "/api/v1/builds/{build_id}",
            "/api/v1/builds/{build_id}/logs",
            "/api/v1/builds/{build_id}/dockerfile",
            "/api/v1/builds/{build_id}/cancel",
            "/api/v1/builds/{build_id}/rebuild",
            "/healthz",
            "/readyz",
        ):
            assert path in paths
        upload = paths["/api/v1/builds"]["post"]
        assert set(upload["requestBody"]["content"]) == {"multipart/form-data", "application/zip"}
        assert "413" in upload["responses"]


class TestMetrics:
    def test_reports_builds_queue_phases_and_uploads(
        self, client: TestClient, sqlite_engine: Engine
    ) -> None:
        build_id = str(submit(client, zip_project("passing"))["id"])
        with session_scope(sqlite_engine) as session:
            transition(session, build_id, BuildStatus.RUNNING)
            transition(session, build_id, BuildStatus.SUCCEEDED)
        submit(client, zip_project("passing"))
        response = client.get("/metrics", headers={"Authorization": ""})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert 'imagebuilder_builds{status="succeeded"} 1.0' in text
        assert "imagebuilder_queue_depth 1.0" in text
        assert "imagebuilder_running_builds 0.0" in text
        assert 'imagebuilder_phase_duration_seconds_count{phase="preparing"} 1.0' in text
        assert "imagebuilder_upload_bytes_count 2.0" in text
        assert "imagebuilder_log_bytes_total" in text


class TestPlan:
    def test_plans_without_building_or_storing(
        self, client: TestClient, sqlite_engine: Engine, settings: Settings
    ) -> None:
        response = client.post(
            "/api/v1/plan",
            files={"source": ("app.zip", zip_project("passing", prefix="passing-main/"))},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["generated"] is True
        assert body["plan"]["test_command"] == "python -m pytest"
        assert any("requirements.txt" in reason for reason in body["plan"]["reasons"])
        assert "AS runtime" in body["dockerfile"]
        assert build_count(sqlite_engine) == 0
        assert not any(settings.sources_dir.glob("*")) if settings.sources_dir.exists() else True
        assert list(settings.workspaces_dir.iterdir()) == []

    def test_a_lost_docker_daemon_answers_503_not_500(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # /plan asks the daemon which base images it holds; with no daemon at DOCKER_HOST the
        # failure reaches the one DockerUnavailable handler.
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        local = settings.model_copy(update={"pull_base_images": False, "api_docker_access": True})
        with TestClient(create_app(local), raise_server_exceptions=False) as test_client:
            response = test_client.post(
                "/api/v1/plan",
                files={"source": ("app.zip", zip_project("passing"))},
                headers=AUTH,
            )
        assert_problem(response, 503, "unavailable")
        assert "Docker daemon" in response.json()["detail"]
        assert response.headers["retry-after"]

    def test_the_projects_own_dockerfile_is_returned(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/plan", files={"source": ("p.zip", zip_project("own_dockerfile"))}
        )
        assert response.status_code == 200, response.text
        assert response.json()["generated"] is False
        assert response.json()["dockerfile"].startswith("# A project that brings its own")

    def test_a_missing_context_dir_is_a_problem(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/plan",
            files={"source": ("p.zip", zip_project("passing"))},
            data={"context_dir": "nope"},
        )
        # The code a build of the same upload fails with.
        assert_problem(response, 400, "context_dir_missing")

    @pytest.mark.parametrize(
        ("dockerfile", "overrides", "code"),
        [
            # BuildKit reads BUILDKIT_* arguments itself: refused before building.
            ("FROM imagebuilder/python:3.11\nARG BUILDKIT_SYNTAX\n", {}, "dockerfile_invalid"),
            # Not on the allowlist.
            (
                "FROM elsewhere.example/python:3.11\n",
                {"allowed_base_images": ["imagebuilder/python:*"]},
                "base_image_not_allowed",
            ),
        ],
    )
    def test_refuses_what_the_build_would_refuse(
        self,
        settings: Settings,
        sqlite_engine: Engine,
        dockerfile: str,
        overrides: dict[str, object],
        code: str,
    ) -> None:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("Dockerfile", dockerfile)
            zipped.writestr("app.py", "print('hi')\n")
        with TestClient(create_app(settings.model_copy(update=overrides))) as test_client:
            response = test_client.post(
                "/api/v1/plan", files={"source": ("p.zip", archive.getvalue())}, headers=AUTH
            )
        assert_problem(response, 400, code)

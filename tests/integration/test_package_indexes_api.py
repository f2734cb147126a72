"""Package index registration: the routes (scopes, errors, credentials never returned) and the
domain functions on SQLite and PostgreSQL (encrypted rows, what a build of an owner gets)."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from app.main import create_app
from core.access.package_indexes import (
    GLOBAL_SCOPE,
    IndexCredentials,
    build_indexes,
    list_indexes,
    put_index,
)
from core.access.secret_box import secret_box
from core.db import session_scope
from core.models import PackageIndex
from core.settings import Settings
from tests.conftest import ADMIN_TOKEN
from worker import build_secrets

PASSWORD = "pw-0123456789abcdef-unique"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(settings: Settings, sqlite_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _token(client: TestClient, owner: str) -> dict[str, str]:
    answer = client.post("/api/v1/tokens", json={"owner": owner}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _assert_problem(response: httpx2.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


BODY = {"url": "https://pypi.corp.example/simple", "username": "ci", "password": PASSWORD}


class TestRoutes:
    def test_put_list_delete_never_return_credentials(
        self, client: TestClient, sqlite_engine: Engine
    ) -> None:
        alice = _token(client, "alice")
        put = client.put("/api/v1/owner/indexes/corp", json=BODY, headers=alice)
        assert put.status_code == 200, put.text
        assert put.json() | {"created_at": None, "updated_at": None} == {
            "name": "corp",
            "owner": "alice",
            "url": BODY["url"],
            "default": False,
            "has_credentials": True,
            "created_at": None,
            "updated_at": None,
        }
        listed = client.get("/api/v1/owner/indexes", headers=alice)
        assert [item["name"] for item in listed.json()] == ["corp"]
        for answer in (put, listed):
            assert PASSWORD not in answer.text
            assert "username" not in answer.text
            assert "password" not in answer.text
        with sqlite_engine.connect() as connection:
            dump = "\n".join(map(repr, connection.execute(text("SELECT * FROM package_indexes"))))
        assert PASSWORD not in dump
        assert "v1:" in dump
        assert client.delete("/api/v1/owner/indexes/corp", headers=alice).status_code == 204
        assert client.get("/api/v1/owner/indexes", headers=alice).json() == []
        _assert_problem(
            client.delete("/api/v1/owner/indexes/corp", headers=alice), 404, "index_not_found"
        )

    def test_owners_see_their_own_and_the_global_indexes_only(self, client: TestClient) -> None:
        alice, bob = _token(client, "alice"), _token(client, "bob")
        assert client.put("/api/v1/owner/indexes/a", json=BODY, headers=alice).status_code == 200
        answer = client.put(
            "/api/v1/owner/indexes/mirror",
            params={"owner": GLOBAL_SCOPE},
            json={"url": "https://mirror.example/simple", "default": True},
            headers=ADMIN,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["has_credentials"] is False
        names = [
            (i["owner"], i["name"]) for i in client.get("/api/v1/owner/indexes", headers=bob).json()
        ]
        assert names == [(GLOBAL_SCOPE, "mirror")]
        names = [
            (i["owner"], i["name"])
            for i in client.get("/api/v1/owner/indexes", headers=alice).json()
        ]
        assert names == [("alice", "a"), (GLOBAL_SCOPE, "mirror")]
        # An admin manages alice's on her behalf.
        listed = client.get("/api/v1/owner/indexes", params={"owner": "alice"}, headers=ADMIN)
        assert [i["name"] for i in listed.json()] == ["a", "mirror"]

    @pytest.mark.parametrize("owner", ["alice", GLOBAL_SCOPE])
    def test_a_non_admin_cannot_touch_other_scopes(self, client: TestClient, owner: str) -> None:
        bob = _token(client, "bob")
        for answer in (
            client.put("/api/v1/owner/indexes/x", params={"owner": owner}, json=BODY, headers=bob),
            client.get("/api/v1/owner/indexes", params={"owner": owner}, headers=bob),
            client.delete("/api/v1/owner/indexes/x", params={"owner": owner}, headers=bob),
        ):
            _assert_problem(answer, 403, "forbidden")

    @pytest.mark.parametrize(
        "body",
        [
            {"url": "https://ci:secret@pypi.corp.example/simple"},
            {"url": "http://pypi.corp.example/simple"},
            {"url": "https://pypi.corp.example/simple", "username": "ci"},
            {"url": "https://pypi.corp.example/simple", "username": "c i", "password": "x"},
            {"url": "https://pypi.corp.example/simple", "username": "ci", "password": 'a"b'},
        ],
    )
    def test_refuses_bad_input_and_stores_nothing(
        self, client: TestClient, sqlite_engine: Engine, body: dict[str, str]
    ) -> None:
        answer = client.put("/api/v1/owner/indexes/corp", json=body, headers=_token(client, "a"))
        _assert_problem(answer, 422, "invalid_option")
        assert "secret" not in answer.text
        with session_scope(sqlite_engine) as session:
            assert session.scalars(select(PackageIndex)).all() == []

    def test_refuses_a_bad_name(self, client: TestClient) -> None:
        answer = client.put("/api/v1/owner/indexes/Corp", json=BODY, headers=_token(client, "a"))
        _assert_problem(answer, 422, "invalid_option")

    def test_needs_a_token(self, client: TestClient) -> None:
        _assert_problem(client.get("/api/v1/owner/indexes"), 401, "unauthenticated")


class TestResolution:
    def test_what_a_build_gets(self, settings: Settings, engine: Engine) -> None:
        box = secret_box(settings)
        common = {"allow_http": False}
        with session_scope(engine) as session:
            put_index(
                session, box, owner=GLOBAL_SCOPE, name="mirror", url="https://mirror.example/simple",
                username=None, password=None, default=True, **common,
            )  # fmt: skip
            put_index(
                session, box, owner=GLOBAL_SCOPE, name="shared", url="https://shared.example/simple",
                username="g", password="global-pw", default=False, **common,
            )  # fmt: skip
            put_index(
                session, box, owner="alice", name="shared", url="https://alice.example/simple",
                username="a", password=PASSWORD, default=False, **common,
            )  # fmt: skip
        with session_scope(engine) as session:
            stored = session.scalars(select(PackageIndex.credentials)).all()
            assert all(PASSWORD not in (value or "") for value in stored)
            alice = build_indexes(
                session, box, "alice", found={"alice.example": IndexCredentials("x", "ignored")}
            )
            bob = build_indexes(session, box, "bob")
        # alice's "shared" hides the global one; the global default applies to both.
        assert alice.default_url == "https://mirror.example/simple"
        assert alice.extra_urls == ["https://alice.example/simple"]
        assert alice.netrc == {"alice.example": IndexCredentials("a", PASSWORD)}
        assert bob.extra_urls == ["https://shared.example/simple"]
        assert bob.netrc == {"shared.example": IndexCredentials("g", "global-pw")}

    def test_a_new_default_replaces_the_previous_one(
        self, settings: Settings, engine: Engine
    ) -> None:
        box = secret_box(settings)
        with session_scope(engine) as session:
            for name in ("one", "two"):
                put_index(
                    session, box, owner="alice", name=name, url=f"https://{name}.example/simple",
                    username=None, password=None, default=True, allow_http=False,
                )  # fmt: skip
        with session_scope(engine) as session:
            defaults = [row.name for row in list_indexes(session, "alice") if row.is_default]
        assert defaults == ["two"]


class TestPlanRoute:
    def test_credentials_in_the_project_are_never_shown(self, client: TestClient) -> None:
        secret_url = f"https://ci:{PASSWORD}@pypi.corp.example/simple"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("requirements.txt", f"--index-url {secret_url}\nrequests\n")
            archive.writestr("app.py", "print('hi')\n")
            archive.writestr(
                "Dockerfile",
                f"FROM python:3.11-slim\nRUN pip install --index-url {secret_url} requests\n",
            )
        answer = client.post(
            "/api/v1/plan", files={"source": ("p.zip", buffer.getvalue())}, headers=ADMIN
        )
        assert answer.status_code == 200, answer.text
        assert PASSWORD not in answer.text
        body = answer.json()
        assert "--index-url https://pypi.corp.example/simple" in body["plan"]["requirements"]
        assert "RUN pip install --index-url https://pypi.corp.example/simple" in body["dockerfile"]
        assert "imagebuilder indexes put" in body["plan"]["warnings"][0]
        assert "Dockerfile (pypi.corp.example)" in body["plan"]["warnings"][0]


class TestBuildSecrets:
    def test_prepare_writes_private_files_and_remove_deletes_them(
        self, settings: Settings, engine: Engine, tmp_path: Path
    ) -> None:
        with session_scope(engine) as session:
            put_index(
                session, secret_box(settings), owner="alice", name="corp",
                url="https://pypi.corp.example/simple", username="ci", password=PASSWORD,
                default=True, allow_http=False,
            )  # fmt: skip
        project = tmp_path / "project"
        project.mkdir()
        written = "--extra-index-url https://bot:found-pw-123@other.example/simple\nx\n"
        (project / "requirements.txt").write_text(written)

        secrets = build_secrets.prepare(project, engine, settings, "alice")
        try:
            assert (project / "requirements.txt").read_text() == (
                "--extra-index-url https://other.example/simple\nx\n"
            )
            assert secrets.folder is not None
            assert stat.S_IMODE(secrets.folder.stat().st_mode) == 0o700
            netrc = secrets.files["package_index_netrc"]
            assert {stat.S_IMODE(path.stat().st_mode) for path in secrets.files.values()} == {0o600}
            assert netrc.read_text() == (
                "machine other.example\nlogin bot\npassword found-pw-123\n\n"
                f"machine pypi.corp.example\nlogin ci\npassword {PASSWORD}\n\n"
            )
            exports = secrets.files["package_index_env"].read_text()
            assert "UV_DEFAULT_INDEX=https://pypi.corp.example/simple" in exports
            assert PASSWORD not in exports
            assert secrets.summary is not None
            assert PASSWORD not in secrets.summary
            assert secrets.warning is not None
            assert "requirements.txt (other.example)" in secrets.warning
            line = f"error: 401 for ci:{PASSWORD} and found-pw-123"
            assert secrets.redact(line) == "error: 401 for ci:**** and ****"
        finally:
            secrets.remove()
        assert not netrc.exists()
        assert secrets.files == {}

    def test_nothing_registered_nothing_written(
        self, settings: Settings, engine: Engine, tmp_path: Path
    ) -> None:
        (tmp_path / "requirements.txt").write_text("requests\n")
        secrets = build_secrets.prepare(tmp_path, engine, settings, "nobody")
        assert secrets.files == {}
        assert secrets.folder is None
        assert secrets.warning is None

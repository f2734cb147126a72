"""Tokens and tenants over the HTTP API: who may see and touch which build.

The route table below must name every /api route: a new route without an ownership case fails
`test_every_api_route_has_an_ownership_case`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.main import create_app
from core.admin import main as admin_main
from core.settings import Settings, get_settings
from tests.conftest import ADMIN_TOKEN, zip_project


@dataclass
class Tenants:
    client: TestClient
    alice: str
    bob: str
    build_id: str

    def as_(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def tenants(settings: Settings, sqlite_engine: Engine, redis_url: str) -> Iterator[Tenants]:
    with TestClient(create_app(settings)) as client:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        alice = client.post("/api/v1/tokens", json={"owner": "alice"}, headers=admin).json()
        bob = client.post("/api/v1/tokens", json={"owner": "bob"}, headers=admin).json()
        response = client.post(
            "/api/v1/builds",
            files={"source": ("p.zip", zip_project("passing"))},
            headers={"Authorization": f"Bearer {alice['token']}"},
        )
        assert response.status_code == 202, response.text
        yield Tenants(client, alice["token"], bob["token"], response.json()["id"])


# (method, path template) -> status for the owner and for an admin, with the problem code when
# the answer is an error (the build is queued: it has no Dockerfile, artifacts or image yet).
# Any other owner gets 404 build_not_found.
BUILD_ROUTES: dict[tuple[str, str], tuple[int, str | None]] = {
    ("GET", "/api/v1/builds/{build_id}"): (200, None),
    ("GET", "/api/v1/builds/{build_id}/logs"): (200, None),
    ("GET", "/api/v1/builds/{build_id}/dockerfile"): (404, "dockerfile_not_ready"),
    ("GET", "/api/v1/builds/{build_id}/sbom"): (404, "artifact_not_available"),
    ("GET", "/api/v1/builds/{build_id}/provenance"): (404, "artifact_not_available"),
    ("GET", "/api/v1/builds/{build_id}/image"): (409, "image_unavailable"),
    ("POST", "/api/v1/builds/{build_id}/rebuild"): (202, None),
    ("POST", "/api/v1/builds/{build_id}/cancel"): (202, None),
}
# Routes whose ownership is not about one build: what a non-admin caller gets.
OTHER_ROUTES: dict[tuple[str, str], int] = {
    ("POST", "/api/v1/builds"): 202,
    ("GET", "/api/v1/builds"): 200,
    ("POST", "/api/v1/plan"): 200,
    ("POST", "/api/v1/tokens"): 403,
    ("GET", "/api/v1/tokens"): 403,
    ("DELETE", "/api/v1/tokens/{token_id}"): 403,
    ("GET", "/api/v1/admin/builds"): 403,
    ("POST", "/api/v1/admin/rebuild"): 403,
    ("GET", "/api/v1/owner/webhook"): 200,
    ("PUT", "/api/v1/owner/webhook"): 200,
    # Package indexes: always the caller's own scope (another owner's is 403, see
    # test_package_indexes_api); deleting one the caller never registered is 404.
    ("GET", "/api/v1/owner/indexes"): 200,
    ("PUT", "/api/v1/owner/indexes/{name}"): 200,
    ("DELETE", "/api/v1/owner/indexes/{name}"): 404,
}


def api_routes(settings: Settings) -> set[tuple[str, str]]:
    """Every /api operation, as the OpenAPI document (which must describe them all) lists them."""
    paths = create_app(settings).openapi()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
    }


def test_every_api_route_has_an_ownership_case(settings: Settings) -> None:
    assert api_routes(settings) == set(BUILD_ROUTES) | set(OTHER_ROUTES)


class TestBuildOwnership:
    @pytest.mark.parametrize(("method", "template"), sorted(BUILD_ROUTES))
    def test_another_owner_gets_404_like_a_missing_build(
        self, tenants: Tenants, method: str, template: str
    ) -> None:
        absent_id = "b_01JDNOSUCHBUILD0000000000"
        path = template.format(build_id=tenants.build_id)
        foreign = tenants.client.request(method, path, headers=tenants.as_(tenants.bob))
        missing = tenants.client.request(
            method, template.format(build_id=absent_id), headers=tenants.as_(tenants.bob)
        )
        assert foreign.status_code == missing.status_code == 404
        # The same answer but for the id the caller sent: nothing tells that the build exists.
        assert foreign.text.replace(tenants.build_id, "ID") == missing.text.replace(absent_id, "ID")

    @pytest.mark.parametrize(("method", "template"), sorted(BUILD_ROUTES))
    def test_the_owner_and_an_admin_are_served(
        self, tenants: Tenants, method: str, template: str
    ) -> None:
        path = template.format(build_id=tenants.build_id)
        expected, code = BUILD_ROUTES[(method, template)]
        for token in (tenants.alice, ADMIN_TOKEN):
            response = tenants.client.request(method, path, headers=tenants.as_(token))
            if method == "POST" and template.endswith("/cancel") and token == ADMIN_TOKEN:
                assert response.status_code == 409  # the owner already cancelled it
                continue
            assert response.status_code == expected, response.text
            if code is not None:
                assert response.json()["code"] == code

    @pytest.mark.parametrize(("method", "template"), sorted(BUILD_ROUTES | OTHER_ROUTES))
    def test_no_token_or_a_wrong_one_is_401(
        self, tenants: Tenants, method: str, template: str
    ) -> None:
        path = template.format(build_id=tenants.build_id, token_id="t_x", name="corp")
        for headers in ({}, tenants.as_("ib_wrong_token"), {"Authorization": "Basic eDp5"}):
            response = tenants.client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["code"] == "unauthenticated"

    def test_a_token_in_the_query_string_is_ignored(self, tenants: Tenants) -> None:
        response = tenants.client.get(f"/api/v1/builds?token={tenants.alice}")
        assert response.status_code == 401


class TestLists:
    def test_lists_show_only_the_callers_builds(self, tenants: Tenants) -> None:
        def ids(token: str) -> list[str]:
            body = tenants.client.get("/api/v1/builds", headers=tenants.as_(token)).json()
            return [item["id"] for item in body["items"]]

        assert ids(tenants.alice) == [tenants.build_id]
        assert ids(tenants.bob) == []
        assert ids(ADMIN_TOKEN) == [tenants.build_id]


class TestTokens:
    @pytest.mark.parametrize(("method", "template"), sorted(OTHER_ROUTES))
    def test_non_admin_routes_and_admin_routes(
        self, tenants: Tenants, method: str, template: str
    ) -> None:
        path = template.format(token_id="t_x", name="corp")
        kwargs: dict[str, object] = {"headers": tenants.as_(tenants.bob)}
        if template == "/api/v1/tokens" and method == "POST":
            kwargs["json"] = {"owner": "mallory", "admin": True}
        if template == "/api/v1/owner/webhook" and method == "PUT":
            kwargs["json"] = {"url": "https://hooks.example.com/imagebuilder"}
        if template == "/api/v1/owner/indexes/{name}" and method == "PUT":
            kwargs["json"] = {"url": "https://pypi.example.com/simple"}
        if template in ("/api/v1/builds", "/api/v1/plan") and method == "POST":
            kwargs["files"] = {"source": ("p.zip", zip_project("passing"))}
        response = tenants.client.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == OTHER_ROUTES[(method, template)], response.text
        if response.status_code == 403:
            assert response.json()["code"] == "forbidden"

    def test_secret_is_shown_once_and_stored_hashed(
        self, tenants: Tenants, sqlite_engine: Engine
    ) -> None:
        listed = tenants.client.get("/api/v1/tokens", headers=tenants.as_(ADMIN_TOKEN)).json()
        assert {token["owner"] for token in listed} == {"admin", "alice", "bob"}
        assert all("token" not in token for token in listed)
        with sqlite_engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT prefix, secret_hash FROM tokens").all()
        assert all(tenants.alice not in str(row) for row in stored)
        assert any(tenants.alice.startswith(prefix) for prefix, _ in stored)

    def test_revoked_token_stops_working(self, tenants: Tenants) -> None:
        admin = tenants.as_(ADMIN_TOKEN)
        listed = tenants.client.get("/api/v1/tokens", headers=admin).json()
        bob_id = next(token["id"] for token in listed if token["owner"] == "bob")
        assert tenants.client.delete(f"/api/v1/tokens/{bob_id}", headers=admin).status_code == 204
        response = tenants.client.get("/api/v1/builds", headers=tenants.as_(tenants.bob))
        assert response.status_code == 401
        missing = tenants.client.delete("/api/v1/tokens/t_nope", headers=admin)
        assert missing.status_code == 404
        assert missing.json()["code"] == "token_not_found"

    def test_rejects_an_invalid_owner(self, tenants: Tenants) -> None:
        response = tenants.client.post(
            "/api/v1/tokens", json={"owner": "a b<c>"}, headers=tenants.as_(ADMIN_TOKEN)
        )
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_option"

    def test_a_revoked_bootstrap_token_is_revoked_everywhere(
        self, tenants: Tenants, settings: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        admin = tenants.as_(ADMIN_TOKEN)
        listed = tenants.client.get("/api/v1/tokens", headers=admin).json()
        bootstrap_id = next(token["id"] for token in listed if token["owner"] == "admin")
        assert tenants.client.delete(f"/api/v1/tokens/{bootstrap_id}", headers=admin).status_code
        for path in ("/api/v1/builds", "/api/v1/tokens"):
            response = tenants.client.get(path, headers=admin)
            assert response.status_code == 401, path
            assert response.json()["code"] == "unauthenticated"
        # The way back in: the operator's command line on the server.
        os.environ["IMAGEBUILDER_DATABASE_URL"] = settings.sqlalchemy_url
        get_settings.cache_clear()
        try:
            assert admin_main(["tokens", "create", "--owner", "ops", "--admin"]) == 0
        finally:
            del os.environ["IMAGEBUILDER_DATABASE_URL"]
            get_settings.cache_clear()
        secret = capsys.readouterr().out.strip()
        listed = tenants.client.get("/api/v1/tokens", headers=tenants.as_(secret))
        assert listed.status_code == 200
        assert {token["owner"] for token in listed.json()} == {"admin", "alice", "bob", "ops"}


class TestImageNamespaces:
    @pytest.mark.parametrize(
        "tag", ["registry.example.com/other-team/app:1", "127.0.0.1:5000/app", "localhost/app"]
    )
    def test_a_tag_naming_a_registry_host_is_refused(self, tenants: Tenants, tag: str) -> None:
        before = tenants.client.get("/api/v1/builds", headers=tenants.as_(tenants.alice)).json()
        response = tenants.client.post(
            "/api/v1/builds",
            files={"source": ("p.zip", zip_project("passing"))},
            data={"tag": tag},
            headers=tenants.as_(tenants.alice),
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "tag_not_allowed"
        after = tenants.client.get("/api/v1/builds", headers=tenants.as_(tenants.alice)).json()
        assert after == before

    def test_two_owners_with_the_same_tag_get_different_images(
        self, tenants: Tenants, settings: Settings, sqlite_engine: Engine
    ) -> None:
        ids = []
        for token in (tenants.alice, tenants.bob):
            response = tenants.client.post(
                "/api/v1/builds",
                files={"source": ("p.zip", zip_project("passing"))},
                data={"tag": "team/app:1"},
                headers=tenants.as_(token),
            )
            assert response.status_code == 202, response.text
            assert response.json()["options"]["tag"] == "team/app:1"
            ids.append(response.json()["id"])
        with sqlite_engine.connect() as connection:
            tags: dict[str, str] = dict(
                connection.exec_driver_sql(
                    "SELECT id, image_tag FROM builds WHERE id IN (?, ?)", tuple(ids)
                ).all()
            )
        namespace = settings.image_namespace
        assert tags == {
            ids[0]: f"{namespace}/alice/team/app:1",
            ids[1]: f"{namespace}/bob/team/app:1",
        }

"""The OpenAPI document as generators consume it: valid, stable operation ids, a bearer scheme,
problem+json errors, no phantom schemas; and the copy in docs/ is the one the app serves."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from openapi_spec_validator import validate

from app.main import create_app
from app.openapi import OPERATION_IDS
from core.settings import Settings
from tests.conftest import ROOT

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    return create_app(settings).openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


class TestDocument:
    def test_is_a_valid_openapi_document(self, document: dict[str, Any]) -> None:
        validate(document)

    def test_operation_ids_are_the_contracts_names(self, document: dict[str, Any]) -> None:
        ids = {(method, path): op["operationId"] for method, path, op in operations(document)}
        assert len(set(ids.values())) == len(ids)
        for key, name in OPERATION_IDS.items():
            assert ids[key] == name
        for name in ids.values():
            assert re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", name), name

    def test_api_routes_declare_the_bearer_scheme(self, document: dict[str, Any]) -> None:
        scheme = document["components"]["securitySchemes"]["bearer"]
        assert scheme["type"] == "http"
        assert scheme["scheme"] == "bearer"
        for _method, path, operation in operations(document):
            if path.startswith("/api/"):
                assert operation["security"] == [{"bearer": []}], path
                assert "401" in operation["responses"], path
            else:
                assert "security" not in operation, path

    def test_every_error_is_problem_json_only(self, document: dict[str, Any]) -> None:
        seen = 0
        for method, path, operation in operations(document):
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    seen += 1
                    assert response["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    }, f"{method} {path} {status}"
        assert seen > 40

    def test_a_422_is_listed_only_where_a_request_can_be_invalid(
        self, document: dict[str, Any]
    ) -> None:
        for method, path, operation in operations(document):
            can_fail = "requestBody" in operation or any(
                p["in"] != "path" for p in operation.get("parameters", [])
            )
            assert ("422" in operation["responses"]) == can_fail, f"{method} {path}"
        schemas = document["components"]["schemas"]
        assert "HTTPValidationError" not in schemas
        assert "ValidationError" not in schemas

    def test_every_schema_is_referenced(self, document: dict[str, Any]) -> None:
        text = repr(document["paths"]) + repr(document["components"]["schemas"])
        for name in document["components"]["schemas"]:
            assert f"#/components/schemas/{name}'" in text, f"{name} is never referenced"


class TestBearerScheme:
    def test_the_scheme_is_read_from_the_header_only(self, settings: Settings) -> None:
        from fastapi.testclient import TestClient

        with TestClient(create_app(settings)) as client:
            for headers, params in (
                ({}, {"token": "x"}),
                ({"Authorization": "Basic abc"}, {}),
                ({"Authorization": "Bearer "}, {}),
            ):
                response = client.get("/api/v1/builds", headers=headers, params=params)
                assert response.status_code == 401
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["code"] == "unauthenticated"


class TestCommittedCopy:
    def test_docs_hold_the_document_the_app_serves(self) -> None:
        checked = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "openapi_docs.py"), "--check"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr

    def test_the_readme_links_the_contract_inside_the_repository(self) -> None:
        readme = (ROOT / "README.md").read_text()
        assert "](docs/api.md)" in readme
        assert "](docs/openapi.json)" in readme
        assert "../shared" not in readme

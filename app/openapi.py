"""The OpenAPI document as client generators need it: stable operation ids, errors under the media
type actually sent (`application/problem+json`, the `Problem` schema), a 422 only where a request
can fail validation, and no schema that nothing refers to.

FastAPI derives operation ids from function names and paths (`submit_build_api_v1_builds_post`),
which change with any refactor and become method names in generated clients; here they are a
contract. A route missing from OPERATION_IDS gets `<tag>-<function name>`, still stable and unique.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.problems import PROBLEM_JSON

OPERATION_IDS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/builds"): "builds-submit",
    ("GET", "/api/v1/builds"): "builds-list",
    ("GET", "/api/v1/builds/{build_id}"): "builds-get",
    ("GET", "/api/v1/builds/{build_id}/logs"): "builds-logs",
    ("GET", "/api/v1/builds/{build_id}/dockerfile"): "builds-dockerfile",
    ("POST", "/api/v1/builds/{build_id}/cancel"): "builds-cancel",
    ("POST", "/api/v1/builds/{build_id}/rebuild"): "builds-rebuild",
    ("GET", "/api/v1/builds/{build_id}/sbom"): "builds-sbom",
    ("GET", "/api/v1/builds/{build_id}/provenance"): "builds-provenance",
    ("GET", "/api/v1/builds/{build_id}/image"): "builds-image",
    ("POST", "/api/v1/plan"): "plan-create",
    ("GET", "/api/v1/owner/webhook"): "webhook-get",
    ("PUT", "/api/v1/owner/webhook"): "webhook-set",
    ("GET", "/api/v1/owner/indexes"): "indexes-list",
    ("PUT", "/api/v1/owner/indexes/{name}"): "indexes-put",
    ("DELETE", "/api/v1/owner/indexes/{name}"): "indexes-delete",
    ("GET", "/api/v1/admin/builds"): "admin-builds-on-base",
    ("POST", "/api/v1/admin/rebuild"): "admin-rebuild-on-base",
    ("GET", "/api/v1/tokens"): "tokens-list",
    ("POST", "/api/v1/tokens"): "tokens-create",
    ("DELETE", "/api/v1/tokens/{token_id}"): "tokens-revoke",
    ("GET", "/healthz"): "health-live",
    ("GET", "/readyz"): "health-ready",
    ("GET", "/metrics"): "health-metrics",
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function`: the contract's id for a route."""
    method = sorted(route.methods or {"GET"})[0]
    known = OPERATION_IDS.get((method, route.path_format))
    if known is not None:
        return known
    tag = str(route.tags[0]) if route.tags else "api"
    return f"{_slug(tag)}-{_slug(route.name)}"


def _can_fail_validation(operation: dict[str, Any]) -> bool:
    # Path parameters are plain strings here; a query parameter or a body can be invalid.
    parameters = operation.get("parameters", [])
    return "requestBody" in operation or any(p.get("in") != "path" for p in parameters)


def _tidy_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.get("responses", {})
    if "422" in responses and not _can_fail_validation(operation):
        del responses["422"]
    for status, response in responses.items():
        if status[:1] in ("4", "5"):
            response["content"] = {PROBLEM_JSON: {"schema": dict(PROBLEM_REF)}}
            if response.get("description") in (None, "", "Validation Error", "A problem"):
                response["description"] = "A problem (RFC 9457)"


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for item in value.values():
            found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def _drop_unreferenced_schemas(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    reachable = _references(document.get("paths", {}))
    pending = list(reachable)
    while pending:
        for name in _references(schemas.get(pending.pop(), {})) - reachable:
            reachable.add(name)
            pending.append(name)
    for name in set(schemas) - reachable:
        del schemas[name]


def tidy(document: dict[str, Any]) -> dict[str, Any]:
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                _tidy_operation(operation)
    _drop_unreferenced_schemas(document)
    return document


def install(app: FastAPI) -> None:
    """Serve the tidied document at /openapi.json (generated once, on first request)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = tidy(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

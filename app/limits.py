"""Bounded work before authentication: request bodies are limited before anything reads them.

Every body but the uploads (which stream to disk under their own, larger limit) is refused with
413 `request_too_large` as soon as it is known to be over `max_request_body_bytes`: at once when
Content-Length says so, before a byte is read; otherwise at the first chunk past the limit. This
runs before routing, so an unauthenticated caller cannot make the service buffer or parse more.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.problems import problem_response

# (method, path) of the routes that stream an upload to disk under max_upload_bytes.
UPLOAD_ROUTES = frozenset(
    {("POST", "/api/v1/builds"), ("POST", "/api/v1/plan"), ("POST", "/ui/builds")}
)


def _too_large_detail(max_bytes: int) -> str:
    return (
        f"The request body is over the {max_bytes} byte limit for this route; only uploads "
        "may be larger."
    )


class BodyLimit:
    """ASGI middleware refusing oversized request bodies outside `UPLOAD_ROUTES`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in UPLOAD_ROUTES:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = problem_response(
                413, "request_too_large", "Request too large", _too_large_detail(self.max_bytes)
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Whoever is reading the body (FastAPI, a form parser) stops here; the
                    # exception handler answers 413 as problem+json.
                    raise HTTPException(413, _too_large_detail(self.max_bytes))
            return message

        await self.app(scope, limited, send)

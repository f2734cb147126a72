"""A small typed wrapper of the imagebuilder HTTP API (API.md) over httpx.

    ClientError              anything that stops a command (exit code 5); `code` names it
    ├── ApiError             the server answered 3xx/4xx/5xx: status, code and detail from its
    │                        problem+json body (or from the status line if there is none)
    └── ConnectionFailed     no usable answer: refused, name lookup, TLS, timeout, cut off

Every request carries `Authorization: Bearer <token>` (never the URL). Build ids are sent as one
percent-encoded path segment, so an id can never reach another route.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast
from urllib.parse import quote

import httpx

from client import __version__

Json = dict[str, Any]
PROBLEM_TYPES = ("application/problem+json", "application/json")
SSE_TYPE = "text/event-stream"
_TIMEOUT = httpx.Timeout(30.0, read=60.0)
# Uploads: the server checks the whole archive before it answers.
_UPLOAD_TIMEOUT = httpx.Timeout(60.0, read=300.0)


class ClientError(Exception):
    """A command cannot go on; `str()` says why, `code` is a stable name for it."""

    def __init__(self, message: str, code: str = "client_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApiError(ClientError):
    """The server answered with an error status."""

    def __init__(
        self, status: int, code: str, detail: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(detail, code)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class ConnectionFailed(ClientError):
    """The server could not be reached, or the connection broke. `reason` is the short cause."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message, "connection_failed")
        self.reason = reason or message


@dataclass(frozen=True)
class BuildRequest:
    """The options of an upload (API.md "POST /api/v1/builds"); None leaves the server's default."""

    tag: str | None = None
    python_version: str | None = None
    run_tests: bool | None = None
    test_command: str | None = None
    dockerfile: str | None = None
    context_dir: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    no_cache: bool | None = None

    def form_fields(self) -> dict[str, str]:
        fields = {
            name: value
            for name, value in (
                ("tag", self.tag),
                ("python_version", self.python_version),
                ("test_command", self.test_command),
                ("dockerfile", self.dockerfile),
                ("context_dir", self.context_dir),
            )
            if value is not None
        }
        if self.run_tests is not None:
            fields["run_tests"] = "true" if self.run_tests else "false"
        if self.build_args:
            fields["build_args"] = json.dumps(dict(self.build_args))
        if self.no_cache is not None:
            fields["no_cache"] = "true" if self.no_cache else "false"
        return fields


class ProgressFile:
    """A binary file that reports how many bytes were read from it, for an upload progress bar.
    httpx reads it in chunks while sending, so the upload is streamed, never held in memory."""

    def __init__(self, file: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._file = file
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        if chunk:
            self._on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()


class Api:
    """The imagebuilder HTTP API at `base_url`, authenticated with `token`."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = _TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": f"imagebuilder-cli/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def build_url(self, build_id: str) -> str:
        """The build's page on the dashboard (served by the API at /builds/{id})."""
        return f"{self.base_url}/builds/{_segment(build_id, 'build id')}"

    def api_url(self, build_id: str) -> str:
        """The build resource."""
        return f"{self.base_url}{_build_path(build_id)}"

    # --- builds --------------------------------------------------------------------------

    def submit(
        self,
        archive: BinaryIO,
        filename: str,
        request: BuildRequest,
        on_progress: Callable[[int], None] = lambda _n: None,
    ) -> Json:
        """Upload the zip in `archive` (multipart, streamed) and queue a build of it."""
        return self._upload("/api/v1/builds", archive, filename, request, on_progress)

    def plan(
        self,
        archive: BinaryIO,
        filename: str,
        request: BuildRequest,
        on_progress: Callable[[int], None] = lambda _n: None,
    ) -> Json:
        """What the service would do with this upload, without building it."""
        return self._upload("/api/v1/plan", archive, filename, request, on_progress)

    def get_build(self, build_id: str) -> Json:
        return _build(self._json("GET", _build_path(build_id)))

    def list_builds(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Json:
        params = {
            key: str(value)
            for key, value in (("status", status), ("limit", limit), ("cursor", cursor))
            if value is not None
        }
        page = self._json("GET", "/api/v1/builds", params=params)
        items = page.get("items")
        if not isinstance(items, list):
            raise ApiError(200, "unexpected_response", "The build list has no 'items' list.")
        page["items"] = [_build(item) for item in items]
        return page

    def cancel(self, build_id: str) -> Json:
        return _build(self._json("POST", f"{_build_path(build_id)}/cancel"))

    def rebuild(self, build_id: str) -> Json:
        return _build(self._json("POST", f"{_build_path(build_id)}/rebuild"))

    def dockerfile(self, build_id: str) -> str:
        """The Dockerfile that was built."""
        path = f"{_build_path(build_id)}/dockerfile"
        return self._request("GET", path, headers={"Accept": "text/plain"}).text

    def log_lines(self, build_id: str, *, after: int = 0) -> Iterator[str]:
        """The stored log as it is now, line by line."""
        with self.open_log(build_id, params={"after": str(after)}) as response:
            yield from complete_lines(iter_text(response), keep_tail=True)

    @contextmanager
    def open_log(
        self,
        build_id: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """The log response, streamed; ApiError if the server refuses."""
        request = self._http.build_request(
            "GET",
            f"{_build_path(build_id)}/logs",
            params=dict(params or {}),
            headers={"Accept": "text/plain", **(headers or {})},
        )
        with self._transport_errors():
            response = self._http.send(request, stream=True)
        try:
            if response.status_code >= 300:
                with self._transport_errors():
                    response.read()
                raise api_error(response)
            yield response
        finally:
            response.close()

    # --- supply chain ------------------------------------------------------------------------

    def sbom(self, build_id: str) -> Json:
        """The image's CycloneDX SBOM."""
        return self._json("GET", f"{_build_path(build_id)}/sbom")

    def provenance(self, build_id: str) -> Json:
        """The image's in-toto statement with a SLSA provenance predicate."""
        return self._json("GET", f"{_build_path(build_id)}/provenance")

    def download_image(
        self,
        build_id: str,
        out: BinaryIO,
        on_progress: Callable[[int], None] = lambda _n: None,
    ) -> int:
        """Stream the image (`docker save` tar) into `out`; returns the bytes written."""
        request = self._http.build_request(
            "GET",
            f"{_build_path(build_id)}/image",
            headers={"Accept": "application/x-tar"},
            timeout=_UPLOAD_TIMEOUT,
        )
        written = 0
        with self._transport_errors():
            response = self._http.send(request, stream=True)
        try:
            if response.status_code >= 300:
                with self._transport_errors():
                    response.read()
                raise api_error(response)
            with self._transport_errors():
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
                    on_progress(len(chunk))
        finally:
            response.close()
        return written

    def get_webhook(self) -> Json:
        """The caller's default webhook URL and signing secret."""
        return self._json("GET", "/api/v1/owner/webhook")

    def set_webhook(
        self,
        url: str | None,
        *,
        secret: str | None = None,
        rotate_secret: bool = False,
        previous_secret_seconds: int | None = None,
    ) -> Json:
        """Set (or with None remove) the default webhook; optionally rotate its secret."""
        body: Json = {"url": url, "rotate_secret": rotate_secret}
        if secret is not None:
            body["secret"] = secret
        if previous_secret_seconds is not None:
            body["previous_secret_seconds"] = previous_secret_seconds
        return self._json("PUT", "/api/v1/owner/webhook", json=body)

    # --- package indexes ---------------------------------------------------------------------

    def put_index(
        self,
        name: str,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        default: bool = False,
        owner: str | None = None,
    ) -> Json:
        """Register (or replace) a package index; the credentials are never sent back."""
        body: Json = {"url": url, "default": default}
        if username is not None or password is not None:
            body |= {"username": username, "password": password}
        params = {"owner": owner} if owner else None
        path = f"/api/v1/owner/indexes/{_segment(name, 'index name')}"
        return self._json("PUT", path, json=body, params=params)

    def list_indexes(self, *, owner: str | None = None) -> list[Json]:
        """The indexes the owner's builds use (its own, then the global ones)."""
        params = {"owner": owner} if owner else None
        response = self._request("GET", "/api/v1/owner/indexes", params=params)
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(200, "unexpected_response", "The server's answer is not JSON.") from exc
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise ApiError(200, "unexpected_response", "The index list is not a list.")
        return cast(list[Json], body)

    def delete_index(self, name: str, *, owner: str | None = None) -> None:
        params = {"owner": owner} if owner else None
        path = f"/api/v1/owner/indexes/{_segment(name, 'index name')}"
        self._request("DELETE", path, params=params)

    # --- admin -------------------------------------------------------------------------------

    def builds_on_base(self, base_digest: str, *, limit: int | None = None) -> Json:
        """Admin: the builds made on a base image digest."""
        params = {"base_digest": base_digest} | ({"limit": str(limit)} if limit else {})
        page = self._json("GET", "/api/v1/admin/builds", params=params)
        items = page.get("items")
        if not isinstance(items, list):
            raise ApiError(200, "unexpected_response", "The build list has no 'items' list.")
        page["items"] = [_build(item) for item in items]
        return page

    def rebuild_on_base(self, base_digest: str, *, limit: int | None = None) -> Json:
        """Admin: rebuild the newest succeeded builds made on a (since patched) base."""
        params = {"base_digest": base_digest} | ({"limit": str(limit)} if limit else {})
        return self._json("POST", "/api/v1/admin/rebuild", params=params)

    # --- tokens (admin) --------------------------------------------------------------------

    def create_token(self, owner: str, *, admin: bool = False) -> Json:
        return self._json("POST", "/api/v1/tokens", json={"owner": owner, "admin": admin})

    def list_tokens(self) -> list[Json]:
        response = self._request("GET", "/api/v1/tokens")
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(200, "unexpected_response", "The server's answer is not JSON.") from exc
        items = body.get("items") if isinstance(body, dict) else body
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ApiError(200, "unexpected_response", "The token list is not a list of tokens.")
        return cast(list[Json], items)

    def revoke_token(self, token_id: str) -> None:
        self._request("DELETE", f"/api/v1/tokens/{_segment(token_id, 'token id')}")

    # --- plumbing ----------------------------------------------------------------------------

    def _upload(
        self,
        path: str,
        archive: BinaryIO,
        filename: str,
        request: BuildRequest,
        on_progress: Callable[[int], None],
    ) -> Json:
        archive.seek(0)
        body = ProgressFile(archive, on_progress)
        try:
            return self._json(
                "POST",
                path,
                files={"source": (filename, body, "application/zip")},
                data=request.form_fields(),
                timeout=_UPLOAD_TIMEOUT,
            )
        except ConnectionFailed as exc:
            if archive.tell() > 0:
                raise ConnectionFailed(
                    f"{exc} The connection broke during the upload; if the project is large the "
                    "server may have refused it for its size (leave out data with .dockerignore)."
                ) from exc
            raise

    def _json(self, method: str, path: str, **kwargs: Any) -> Json:
        response = self._request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(
                response.status_code, "unexpected_response", "The server's answer is not JSON."
            ) from exc
        if not isinstance(body, dict):
            raise ApiError(
                response.status_code, "unexpected_response", "The server's answer is not an object."
            )
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._transport_errors():
            response = self._http.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise api_error(response)
        return response

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(
                f"The server at {self.base_url} did not answer in time ({_reason(exc)}).",
                f"no answer in time ({_reason(exc)})",
            ) from exc
        except httpx.ConnectError as exc:
            raise ConnectionFailed(
                f"Cannot connect to {self.base_url}: {_reason(exc)}. Is the server running, and "
                "is the URL right (--url, IMAGEBUILDER_URL)?",
                f"cannot connect ({_reason(exc)})",
            ) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"The connection to {self.base_url} failed: {_reason(exc)}.", _reason(exc)
            ) from exc


def api_error(response: httpx.Response) -> ApiError:
    """The ApiError a failed response stands for, from its problem+json body if it has one."""
    status = response.status_code
    retry_after = _retry_after(response.headers.get("retry-after"))
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        return ApiError(
            status,
            "redirected",
            f"The server redirected to {location}; set the server URL to that address.",
        )
    body: object = None
    if response.headers.get("content-type", "").split(";")[0].strip() in PROBLEM_TYPES:
        try:
            body = response.json()
        except ValueError:
            body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]:
        code = body.get("code")
        return ApiError(
            status,
            code if isinstance(code, str) and code else f"http_{status}",
            body["detail"],
            retry_after=retry_after,
        )
    reason = response.reason_phrase or "error"
    return ApiError(
        status,
        f"http_{status}",
        f"The server answered HTTP {status} {reason}.",
        retry_after=retry_after,
    )


def iter_text(response: httpx.Response) -> Iterator[str]:
    """The body as UTF-8 text, decoded as it streams (a character split across chunks is fine)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in response.iter_bytes():
        text = decoder.decode(chunk)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def complete_lines(chunks: Iterator[str], *, keep_tail: bool = False) -> Iterator[str]:
    """The lines of a text stream, split on newlines only. An unterminated tail is dropped
    unless `keep_tail`: when following, it is a cut-off line that the resumed read repeats."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split("\n")
        yield from (line.removesuffix("\r") for line in lines)
    if keep_tail and pending:
        yield pending.removesuffix("\r")


def _build(value: object) -> Json:
    if not (
        isinstance(value, dict)
        and isinstance(value.get("id"), str)
        and isinstance(value.get("status"), str)
    ):
        raise ApiError(200, "unexpected_response", "The server's answer is not a build.")
    return cast(Json, value)


def _build_path(build_id: str) -> str:
    return f"/api/v1/builds/{_segment(build_id, 'build id')}"


def _segment(value: str, what: str) -> str:
    if value in ("", ".", "..") or len(value) > 200:
        raise ClientError(f"{value!r} is not a valid {what}.", "invalid_argument")
    return quote(value, safe="")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__

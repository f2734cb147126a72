"""client.api: requests as API.md wants them, errors as problem+json gives them."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator

import httpx
import pytest

from client.api import Api, ApiError, BuildRequest, ClientError, ConnectionFailed
from tests.unit.client_fakes import build

Handler = Callable[[httpx.Request], httpx.Response]


def api_with(handler: Handler, token: str | None = "tok") -> Api:
    return Api("http://builds.test/prefix", token, transport=httpx.MockTransport(handler))


def problem(status: int, code: str, detail: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"type": "t", "title": "x", "status": status, "detail": detail, "code": code},
        headers={"content-type": "application/problem+json", **headers},
    )


class TestRequests:
    def test_token_goes_in_the_authorization_header_only(self) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=build("b_1"))

        with api_with(handler) as api:
            api.get_build("b_1")

        request = seen[0]
        assert request.headers["authorization"] == "Bearer tok"
        assert "tok" not in str(request.url)
        assert str(request.url) == "http://builds.test/prefix/api/v1/builds/b_1"
        assert request.headers["user-agent"].startswith("imagebuilder-cli/")

    def test_no_token_no_header(self) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"items": [], "next_cursor": None})

        with api_with(handler, token=None) as api:
            api.list_builds(status="failed", limit=5)

        assert "authorization" not in seen[0].headers
        assert dict(seen[0].url.params) == {"status": "failed", "limit": "5"}

    @pytest.mark.parametrize(
        ("build_id", "path"),
        [("b_1", "/b_1"), ("a/../../tokens", "/a%2F..%2F..%2Ftokens"), ("x?y#z", "/x%3Fy%23z")],
    )
    def test_build_ids_stay_one_path_segment(self, build_id: str, path: str) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=build(build_id))

        with api_with(handler) as api:
            api.cancel(build_id)

        assert seen[0].url.raw_path.decode() == f"/prefix/api/v1/builds{path}/cancel"

    @pytest.mark.parametrize("build_id", ["", ".", ".."])
    def test_ids_that_would_change_the_path_are_refused(self, build_id: str) -> None:
        with api_with(lambda _r: httpx.Response(500)) as api, pytest.raises(ClientError):
            api.get_build(build_id)

    def test_build_request_form_fields(self) -> None:
        request = BuildRequest(
            tag="app:1",
            python_version="3.12",
            run_tests=False,
            build_args={"A": "1", "B": "two words"},
        )

        assert request.form_fields() == {
            "tag": "app:1",
            "python_version": "3.12",
            "run_tests": "false",
            "build_args": '{"A": "1", "B": "two words"}',
        }
        assert BuildRequest().form_fields() == {}

    def test_tokens(self) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            if request.method == "POST":
                return httpx.Response(201, json={"id": "t1", "token": "secret"})
            if request.method == "DELETE":
                return httpx.Response(204)
            return httpx.Response(200, json=[{"id": "t1", "owner": "ci"}])

        with api_with(handler) as api:
            assert api.create_token("ci", admin=True)["token"] == "secret"
            assert api.list_tokens() == [{"id": "t1", "owner": "ci"}]
            api.revoke_token("t1")

        assert json.loads(seen[0].content) == {"owner": "ci", "admin": True}
        assert [(r.method, r.url.path) for r in seen] == [
            ("POST", "/prefix/api/v1/tokens"),
            ("GET", "/prefix/api/v1/tokens"),
            ("DELETE", "/prefix/api/v1/tokens/t1"),
        ]


class TestErrors:
    def test_problem_json_gives_status_code_and_detail(self) -> None:
        def handler(_request: httpx.Request) -> httpx.Response:
            return problem(429, "rate_limited", "Slow down.", **{"retry-after": "12"})

        with api_with(handler) as api, pytest.raises(ApiError) as raised:
            api.get_build("b_1")

        error = raised.value
        assert (error.status, error.code, error.detail, error.retry_after) == (
            429,
            "rate_limited",
            "Slow down.",
            12.0,
        )

    def test_an_html_error_page_is_not_shown(self) -> None:
        def handler(_request: httpx.Request) -> httpx.Response:
            return httpx.Response(502, html="<html><script>alert(1)</script></html>")

        with api_with(handler) as api, pytest.raises(ApiError) as raised:
            api.get_build("b_1")

        assert raised.value.code == "http_502"
        assert raised.value.detail == "The server answered HTTP 502 Bad Gateway."

    def test_a_redirect_is_reported_not_followed(self) -> None:
        def handler(_request: httpx.Request) -> httpx.Response:
            return httpx.Response(301, headers={"location": "https://builds.test/"})

        with api_with(handler) as api, pytest.raises(ApiError) as raised:
            api.get_build("b_1")

        assert raised.value.code == "redirected"
        assert "https://builds.test/" in raised.value.detail

    @pytest.mark.parametrize(
        "body", [b"not json", b"[1, 2]", json.dumps({"id": 5, "status": "x"}).encode()]
    )
    def test_an_answer_that_is_not_a_build_is_an_error(self, body: bytes) -> None:
        with (
            api_with(lambda _r: httpx.Response(200, content=body)) as api,
            pytest.raises(ApiError, match="not"),
        ):
            api.get_build("b_1")

    def test_connection_errors_say_where_and_what_to_check(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("Connection refused", request=request)

        with api_with(handler) as api, pytest.raises(ConnectionFailed) as raised:
            api.get_build("b_1")

        assert "http://builds.test/prefix" in str(raised.value)
        assert "IMAGEBUILDER_URL" in str(raised.value)


class TestUpload:
    def test_streams_the_zip_as_multipart_and_reports_progress(self) -> None:
        size = 12 * 1024 * 1024
        chunk_sizes: list[int] = []
        received = bytearray()
        progress: list[int] = []

        class StreamingTransport(httpx.BaseTransport):
            """Reads the request body chunk by chunk, as a socket would."""

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                assert isinstance(request.stream, httpx.SyncByteStream)
                for chunk in request.stream:
                    chunk_sizes.append(len(chunk))
                    if len(received) < 4096:
                        received.extend(chunk[:4096])
                assert request.headers["content-length"] == str(sum(chunk_sizes))
                return httpx.Response(202, json=build("b_9"))

        with tempfile.TemporaryFile() as archive:
            archive.write(b"PK" + bytes(size - 2))
            api = Api("http://builds.test", "tok", transport=StreamingTransport())
            tracemalloc.start()
            try:
                result = api.submit(archive, "app.zip", BuildRequest(tag="app:1"), progress.append)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
                api.close()

        assert result["id"] == "b_9"
        assert sum(progress) == size
        assert max(chunk_sizes) <= 64 * 1024
        assert peak < 4 * 1024 * 1024
        head = bytes(received)
        assert b'name="tag"' in head
        assert b'name="source"; filename="app.zip"' in head
        assert b"Content-Type: application/zip" in head

    def test_plan_uses_its_own_route(self) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"plan": {"python_version": "3.11"}})

        with tempfile.TemporaryFile() as archive, api_with(handler) as api:
            archive.write(b"PK")
            assert api.plan(archive, "a.zip", BuildRequest()) == {
                "plan": {"python_version": "3.11"}
            }

        assert (seen[0].method, seen[0].url.path) == ("POST", "/prefix/api/v1/plan")


class TestLogLines:
    def test_splits_on_newlines_only_and_keeps_a_final_unterminated_line(self) -> None:
        body = "one\x0cform feed\ntwo\u2028same line\r\nthree".encode()

        def handler(request: httpx.Request) -> httpx.Response:
            assert request.url.params["after"] == "0"
            return httpx.Response(200, content=body, headers={"content-type": "text/plain"})

        with api_with(handler) as api:
            lines = list(api.log_lines("b_1"))

        assert lines == ["one\x0cform feed", "two\u2028same line", "three"]

    def test_utf8_split_across_chunks(self) -> None:
        encoded = "é€🐍\n".encode()

        def chunks() -> Iterator[bytes]:
            yield from (encoded[i : i + 1] for i in range(len(encoded)))

        def handler(_request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=chunks())

        with api_with(handler) as api:
            assert list(api.log_lines("b_1")) == ["é€🐍"]

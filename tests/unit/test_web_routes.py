"""The dashboard's routes through FastAPI's TestClient, on a real SQLite database.

No broker: the app's Celery is replaced by a recorder, so these tests see what would be queued.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from app.main import create_app
from app.web.routes import CONTENT_SECURITY_POLICY
from core.access.tokens import create_token, revoke_token
from core.db import session_scope, utcnow
from core.models import Build, LogLine
from core.settings import Settings
from core.status import BuildStatus
from tests.conftest import zip_project
from tests.factories import queued_build

HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
PROBLEM = "application/problem+json"


class Tags(HTMLParser):
    """The elements and attributes of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.append(tag)
        self.attributes.extend((tag, name, value) for name, value in attrs)
        self._in_script = tag == "script" and not dict(attrs).get("src")
        if self._in_script:
            self.inline_scripts.append("")

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts[-1] += data

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def attributes_named(self, prefix: str) -> list[tuple[str, str, str | None]]:
        return [attr for attr in self.attributes if attr[1].startswith(prefix)]


class RecordingCelery:
    """Stands in for the broker: remembers the build ids it was asked to run."""

    def __init__(self) -> None:
        self.queued: list[str] = []

    def send_task(self, name: str, args: list[str], **_options: Any) -> None:
        self.queued.append(args[0])


@pytest.fixture
def app(settings: Settings, sqlite_engine: Engine) -> FastAPI:
    application = create_app(settings)
    application.state.celery = RecordingCelery()
    return application


@pytest.fixture
def celery(app: FastAPI) -> RecordingCelery:
    recorder: RecordingCelery = app.state.celery
    return recorder


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def new_client(app: FastAPI) -> Iterator[ClientFactory]:
    """Browsers: each client keeps its own cookies."""
    clients: list[TestClient] = []

    def make(base_url: str = "http://testserver") -> TestClient:
        client = TestClient(app, base_url=base_url, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def make_token(engine: Engine, owner: str, *, admin: bool = False) -> str:
    with session_scope(engine) as session:
        return create_token(session, owner=owner, admin=admin).secret


@pytest.fixture
def alice_token(sqlite_engine: Engine) -> str:
    return make_token(sqlite_engine, "alice")


@pytest.fixture
def bob_token(sqlite_engine: Engine) -> str:
    return make_token(sqlite_engine, "bob")


def hidden_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match is not None, f"no hidden {name} field"
    return match.group(1)


def page_csrf(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: TestClient, token: str) -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    form = client.get("/login")
    response = client.post(
        "/ui/login",
        data={"token": token, "csrf_token": hidden_field(form.text, "csrf_token")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    return page_csrf(client.get("/").text)


@pytest.fixture
def alice(new_client: ClientFactory, alice_token: str) -> tuple[TestClient, str]:
    client = new_client()
    return client, sign_in(client, alice_token)


@pytest.fixture
def bob(new_client: ClientFactory, bob_token: str) -> tuple[TestClient, str]:
    client = new_client()
    return client, sign_in(client, bob_token)


def set_cookie_headers(response: httpx2.Response, name: str) -> list[str]:
    return [
        value for value in response.headers.get_list("set-cookie") if value.startswith(f"{name}=")
    ]


def build_status(engine: Engine, build_id: str) -> BuildStatus:
    with session_scope(engine) as session:
        status = session.scalar(select(Build.status).where(Build.id == build_id))
    assert status is not None
    return status


def hostile_build(engine: Engine, owner: str = "alice") -> str:
    """A finished build whose every project-controlled field is an HTML injection attempt."""
    build_id = queued_build(engine, owner=owner)
    now = utcnow()
    with session_scope(engine) as session:
        session.execute(
            update(Build)
            .where(Build.id == build_id)
            .values(
                status=BuildStatus.FAILED,
                started_at=now,
                finished_at=now,
                source_filename=HOSTILE + ".zip",
                options={
                    "tag": HOSTILE,
                    "python_version": None,
                    "run_tests": True,
                    "test_command": HOSTILE,
                    "dockerfile": None,
                    "context_dir": HOSTILE,
                    "build_args": {"EVIL": HOSTILE},
                },
                image_tag=HOSTILE,
                image_id="sha256:" + "a" * 64,
                image_size_bytes=123_456_789,
                tests={
                    "command": HOSTILE,
                    "exit_code": 1,
                    "passed": 1,
                    "failed": 1,
                    "errors": 0,
                    "skipped": 0,
                },
                error_code="tests_failed",
                error_message=HOSTILE,
                dockerfile=f"FROM python:3.11\nRUN echo '{HOSTILE}'\n",
                plan={"python_version": HOSTILE},
                base_image=HOSTILE,
                vulnerabilities=[
                    {
                        "id": HOSTILE,
                        "package": HOSTILE,
                        "installed_version": HOSTILE,
                        "fixed_version": None,
                        "severity": "high",
                        "summary": HOSTILE,
                        "aliases": [],
                    }
                ],
            )
        )
    return build_id


def add_log_lines(engine: Engine, build_id: str, lines: list[tuple[str, str]]) -> None:
    with session_scope(engine) as session:
        for seq, (stream, text) in enumerate(lines, start=1):
            session.add(LogLine(build_id=build_id, seq=seq, at=utcnow(), stream=stream, text=text))
        session.execute(update(Build).where(Build.id == build_id).values(log_lines=len(lines)))


def finish(engine: Engine, build_id: str, status: BuildStatus = BuildStatus.SUCCEEDED) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(Build).where(Build.id == build_id).values(status=status, finished_at=utcnow())
        )


def assert_problem(response: httpx2.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code


class TestSignIn:
    def test_pages_send_a_stranger_to_the_login_page(self, new_client: ClientFactory) -> None:
        client = new_client()
        for path in ("/", "/builds/b_whatever"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303
            assert response.headers["location"] == "/login"

    def test_ui_endpoints_answer_401_without_a_session(self, new_client: ClientFactory) -> None:
        client = new_client()
        assert_problem(client.get("/ui/builds"), 401, "unauthenticated")
        assert_problem(client.get("/ui/builds/b_x/events"), 401, "unauthenticated")

    def test_a_valid_token_gives_a_strict_http_only_cookie(
        self, new_client: ClientFactory, alice_token: str
    ) -> None:
        client = new_client()
        form = client.get("/login")
        response = client.post(
            "/ui/login",
            data={"token": alice_token, "csrf_token": hidden_field(form.text, "csrf_token")},
            follow_redirects=False,
        )
        assert response.status_code == 303
        (cookie,) = set_cookie_headers(response, "ib_session")
        attributes = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in attributes
        assert "samesite=strict" in attributes
        assert "path=/" in attributes
        assert "secure" not in attributes  # plain http: a Secure cookie would never come back
        page = client.get("/")
        assert page.status_code == 200
        assert "alice" in page.text

    def test_over_https_the_cookie_is_secure(
        self, new_client: ClientFactory, alice_token: str
    ) -> None:
        client = new_client("https://testserver")
        form = client.get("/login")
        (login_cookie,) = set_cookie_headers(form, "ib_login")
        assert "secure" in login_cookie.lower()
        response = client.post(
            "/ui/login",
            data={"token": alice_token, "csrf_token": hidden_field(form.text, "csrf_token")},
            follow_redirects=False,
        )
        (cookie,) = set_cookie_headers(response, "ib_session")
        assert "secure" in [part.strip().lower() for part in cookie.split(";")]

    def test_a_wrong_token_is_refused_without_a_cookie(self, new_client: ClientFactory) -> None:
        client = new_client()
        form = client.get("/login")
        response = client.post(
            "/ui/login",
            data={"token": "ib_nope_nope", "csrf_token": hidden_field(form.text, "csrf_token")},
            follow_redirects=False,
        )
        assert response.status_code == 401
        assert "not valid" in response.text
        assert set_cookie_headers(response, "ib_session") == []
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY

    def test_login_without_the_form_nonce_is_403(
        self, new_client: ClientFactory, alice_token: str
    ) -> None:
        client = new_client()
        client.get("/login")
        for data in ({"token": alice_token}, {"token": alice_token, "csrf_token": "forged"}):
            response = client.post("/ui/login", data=data, follow_redirects=False)
            assert response.status_code == 403
            assert set_cookie_headers(response, "ib_session") == []

    def test_a_token_in_the_query_string_is_never_read(
        self, new_client: ClientFactory, alice_token: str
    ) -> None:
        client = new_client()
        page = client.get("/", params={"token": alice_token}, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/login"
        form = client.get("/login", params={"token": alice_token})
        response = client.post(
            "/ui/login",
            params={"token": alice_token},
            data={"csrf_token": hidden_field(form.text, "csrf_token")},
            follow_redirects=False,
        )
        assert response.status_code == 401
        assert set_cookie_headers(response, "ib_session") == []

    def test_a_cross_site_login_is_refused(
        self, new_client: ClientFactory, alice_token: str
    ) -> None:
        client = new_client()
        form = client.get("/login")
        response = client.post(
            "/ui/login",
            data={"token": alice_token, "csrf_token": hidden_field(form.text, "csrf_token")},
            headers={"Sec-Fetch-Site": "cross-site"},
            follow_redirects=False,
        )
        assert response.status_code == 403
        assert set_cookie_headers(response, "ib_session") == []

    def test_signing_out_forgets_the_session(self, alice: tuple[TestClient, str]) -> None:
        client, csrf = alice
        response = client.post("/ui/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert "max-age=0" in set_cookie_headers(response, "ib_session")[0].lower()
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"

    def test_signing_out_needs_the_csrf_token(self, alice: tuple[TestClient, str]) -> None:
        client, _ = alice
        assert_problem(client.post("/ui/logout"), 403, "csrf_failed")
        assert client.get("/", follow_redirects=False).status_code == 200

    def test_a_revoked_token_ends_the_session(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        with session_scope(sqlite_engine) as session:
            from core.models import Token

            token_id = session.scalars(select(Token.id).where(Token.owner == "alice")).one()
            revoke_token(session, token_id)
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"
        assert_problem(client.get("/ui/builds"), 401, "unauthenticated")

    def test_the_json_api_ignores_the_dashboard_cookie(self, alice: tuple[TestClient, str]) -> None:
        client, _ = alice
        assert_problem(client.get("/api/v1/builds"), 401, "unauthenticated")


class TestPages:
    def test_every_page_and_fragment_carries_the_security_headers(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        for path in (
            "/",
            "/login",
            f"/builds/{build_id}",
            "/builds/b_missing",
            "/ui/builds",
            f"/ui/builds/{build_id}/summary",
        ):
            response = client.get(path, follow_redirects=False)
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["cache-control"] == "no-store"

    def test_the_policy_forbids_inline_script_and_framing(self) -> None:
        directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in CONTENT_SECURITY_POLICY

    def test_pages_have_no_inline_script_style_or_handlers(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        build_id = hostile_build(sqlite_engine)
        for path in ("/", f"/builds/{build_id}", "/login"):
            tags = Tags()
            tags.feed(client.get(path).text)
            assert tags.inline_scripts == [], path
            assert tags.attributes_named("style") == [], path
            assert tags.attributes_named("on") == [], path
            assert "img" not in tags.names, path

    def test_the_list_shows_only_the_callers_builds(
        self,
        alice: tuple[TestClient, str],
        bob: tuple[TestClient, str],
        sqlite_engine: Engine,
    ) -> None:
        alices = queued_build(sqlite_engine, owner="alice")
        bobs = queued_build(sqlite_engine, owner="bob")
        for path in ("/", "/ui/builds"):
            html = alice[0].get(path).text
            assert alices in html
            assert bobs not in html

    def test_the_list_filters_by_status(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        done = queued_build(sqlite_engine, owner="alice")
        finish(sqlite_engine, done)
        waiting = queued_build(sqlite_engine, owner="alice")
        html = client.get("/", params={"status": "succeeded"}).text
        assert done in html
        assert waiting not in html
        assert 'data-refresh="/ui/builds?status=succeeded"' in html

    def test_the_detail_page_shows_the_build(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, csrf = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        html = client.get(f"/builds/{build_id}").text
        assert f'data-events="/ui/builds/{build_id}/events"' in html
        assert 'class="badge status-queued"' in html
        assert f'action="/ui/builds/{build_id}/cancel"' in html
        assert f'name="csrf_token" value="{csrf}"' in html

    def test_another_owners_build_is_not_found(
        self, bob: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = bob
        build_id = queued_build(sqlite_engine, owner="alice")
        assert client.get(f"/builds/{build_id}").status_code == 404
        for part in ("summary", "events", "dockerfile", "log"):
            assert_problem(client.get(f"/ui/builds/{build_id}/{part}"), 404, "build_not_found")

    def test_static_files_are_served_with_nosniff(self, new_client: ClientFactory) -> None:
        client = new_client()
        for name, kind in (("detail.js", "text/javascript"), ("dashboard.css", "text/css")):
            response = client.get(f"/ui/static/{name}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(kind)
            assert response.headers["x-content-type-options"] == "nosniff"

    def test_dashboard_routes_stay_out_of_the_openapi_document(
        self, new_client: ClientFactory
    ) -> None:
        paths = new_client().get("/openapi.json").json()["paths"]
        assert not [path for path in paths if path == "/" or path.startswith(("/ui", "/builds"))]


class TestEscaping:
    def test_the_detail_page_escapes_every_project_controlled_field(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        build_id = hostile_build(sqlite_engine)
        for path in (f"/builds/{build_id}", f"/ui/builds/{build_id}/summary"):
            html = client.get(path).text
            assert HOSTILE not in html, path
            assert "<img" not in html, path
            # tag, file name, error, test command, folder, build arg, detected Python, base
            # image, and a finding's advisory, package and version
            assert html.count(ESCAPED) >= 11, path

    def test_the_list_escapes_tags_and_file_names(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        hostile_build(sqlite_engine)
        for path in ("/", "/ui/builds"):
            html = client.get(path).text
            assert HOSTILE not in html
            assert f"{ESCAPED}.zip" in html
            assert html.count(ESCAPED) >= 2

    def test_an_unknown_build_id_is_echoed_escaped(self, alice: tuple[TestClient, str]) -> None:
        client, _ = alice
        response = client.get("/builds/" + HOSTILE)
        assert response.status_code == 404
        assert HOSTILE not in response.text
        assert ESCAPED in response.text

    def test_the_dockerfile_is_plain_text_never_html(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        build_id = hostile_build(sqlite_engine)
        response = client.get(f"/ui/builds/{build_id}/dockerfile")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert HOSTILE in response.text  # verbatim: the page shows it with textContent

    def test_a_dockerfile_not_chosen_yet_is_404(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        assert_problem(client.get(f"/ui/builds/{build_id}/dockerfile"), 404, "dockerfile_not_ready")


LOG = [
    ("system", "[imagebuilder] start"),
    ("build", "\x1b[31m" + HOSTILE + "\x1b[0m"),
    ("test", "4 passed"),
]


class TestLogEvents:
    def test_streams_lines_as_events_with_line_number_ids(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        add_log_lines(sqlite_engine, build_id, LOG)
        finish(sqlite_engine, build_id)
        response = client.get(f"/ui/builds/{build_id}/events")
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.text == (
            "id: 1\nevent: system\ndata: [imagebuilder] start\n\n"
            f"id: 2\nevent: build\ndata: \x1b[31m{HOSTILE}\x1b[0m\n\n"
            "id: 3\nevent: test\ndata: 4 passed\n\n"
            "event: end\ndata: succeeded\n\n"
        )

    def test_resumes_after_last_event_id(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        add_log_lines(sqlite_engine, build_id, LOG)
        finish(sqlite_engine, build_id, BuildStatus.FAILED)
        response = client.get(f"/ui/builds/{build_id}/events", headers={"Last-Event-ID": "2"})
        assert response.text == (
            "id: 3\nevent: test\ndata: 4 passed\n\nevent: end\ndata: failed\n\n"
        )
        garbage = client.get(f"/ui/builds/{build_id}/events", headers={"Last-Event-ID": "9" * 40})
        assert garbage.text.startswith("id: 1\n")

    def test_the_log_downloads_as_text(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, _ = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        add_log_lines(sqlite_engine, build_id, LOG)
        response = client.get(f"/ui/builds/{build_id}/log")
        assert response.headers["content-disposition"] == f'attachment; filename="{build_id}.log"'
        assert response.text.splitlines()[-1] == "4 passed"


class TestCancel:
    def test_cancels_with_the_csrf_token_and_returns_to_the_build(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, csrf = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        response = client.post(
            f"/ui/builds/{build_id}/cancel", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"/builds/{build_id}"
        assert build_status(sqlite_engine, build_id) == BuildStatus.CANCELLED

    def test_the_token_may_come_in_a_header(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, csrf = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        response = client.post(
            f"/ui/builds/{build_id}/cancel",
            headers={"X-CSRF-Token": csrf},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert build_status(sqlite_engine, build_id) == BuildStatus.CANCELLED

    @pytest.mark.parametrize("sent", [None, "", "0" * 64, "forged"])
    def test_without_the_right_csrf_token_is_403(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine, sent: str | None
    ) -> None:
        client, _ = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        data = {} if sent is None else {"csrf_token": sent}
        response = client.post(f"/ui/builds/{build_id}/cancel", data=data)
        assert_problem(response, 403, "csrf_failed")
        assert build_status(sqlite_engine, build_id) == BuildStatus.QUEUED

    def test_another_sessions_csrf_token_is_403(
        self,
        alice: tuple[TestClient, str],
        bob: tuple[TestClient, str],
        sqlite_engine: Engine,
    ) -> None:
        build_id = queued_build(sqlite_engine, owner="alice")
        response = alice[0].post(f"/ui/builds/{build_id}/cancel", data={"csrf_token": bob[1]})
        assert_problem(response, 403, "csrf_failed")
        assert build_status(sqlite_engine, build_id) == BuildStatus.QUEUED

    def test_a_cross_site_request_is_403_even_with_the_token(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, csrf = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        response = client.post(
            f"/ui/builds/{build_id}/cancel",
            data={"csrf_token": csrf},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert_problem(response, 403, "csrf_failed")
        assert build_status(sqlite_engine, build_id) == BuildStatus.QUEUED

    def test_another_owners_build_is_404(
        self, bob: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, csrf = bob
        build_id = queued_build(sqlite_engine, owner="alice")
        response = client.post(f"/ui/builds/{build_id}/cancel", data={"csrf_token": csrf})
        assert_problem(response, 404, "build_not_found")
        assert build_status(sqlite_engine, build_id) == BuildStatus.QUEUED

    def test_a_finished_build_just_shows_again(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine
    ) -> None:
        client, csrf = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        finish(sqlite_engine, build_id)
        response = client.post(
            f"/ui/builds/{build_id}/cancel", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert response.status_code == 303
        assert build_status(sqlite_engine, build_id) == BuildStatus.SUCCEEDED


class TestRebuild:
    def test_queues_a_new_build_of_the_same_source(
        self,
        alice: tuple[TestClient, str],
        sqlite_engine: Engine,
        settings: Settings,
        celery: RecordingCelery,
    ) -> None:
        client, csrf = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        finish(sqlite_engine, build_id, BuildStatus.FAILED)
        with session_scope(sqlite_engine) as session:
            sha = session.scalars(select(Build.source_sha256).where(Build.id == build_id)).one()
        stored = settings.sources_dir / f"{sha}.zip"
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(zip_project("passing"))
        response = client.post(
            f"/ui/builds/{build_id}/rebuild", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert response.status_code == 303
        new_id = response.headers["location"].removeprefix("/builds/")
        assert celery.queued == [new_id]
        with session_scope(sqlite_engine) as session:
            new = session.get_one(Build, new_id)
            assert (new.rebuild_of, new.owner, new.status) == (
                build_id,
                "alice",
                BuildStatus.QUEUED,
            )

    def test_without_the_csrf_token_is_403(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine, celery: RecordingCelery
    ) -> None:
        client, _ = alice
        build_id = queued_build(sqlite_engine, owner="alice")
        assert_problem(client.post(f"/ui/builds/{build_id}/rebuild"), 403, "csrf_failed")
        assert celery.queued == []


class TestUpload:
    def upload(self, client: TestClient, csrf: str | None, **fields: str) -> httpx2.Response:
        headers = {} if csrf is None else {"X-CSRF-Token": csrf}
        return client.post(
            "/ui/builds",
            files={"source": ("passing.zip", zip_project("passing"), "application/zip")},
            data=fields,
            headers=headers,
        )

    def test_queues_a_build_owned_by_the_signed_in_caller(
        self, alice: tuple[TestClient, str], sqlite_engine: Engine, celery: RecordingCelery
    ) -> None:
        client, csrf = alice
        response = self.upload(
            client,
            csrf,
            tag="myapp:1.2",
            python_version="3.11",
            run_tests="false",
            build_args="A=1\nB=two words",
        )
        assert response.status_code == 202, response.text
        build_id = response.json()["id"]
        assert response.headers["location"] == f"/builds/{build_id}"
        assert celery.queued == [build_id]
        with session_scope(sqlite_engine) as session:
            build = session.get_one(Build, build_id)
            assert build.owner == "alice"
            assert build.source_filename == "passing.zip"
            assert build.options["tag"] == "myapp:1.2"
            assert build.options["run_tests"] is False
            assert build.options["build_args"] == {"A": "1", "B": "two words"}

    @pytest.mark.parametrize("sent", [None, "forged"])
    def test_without_the_csrf_header_is_403_and_nothing_is_kept(
        self,
        alice: tuple[TestClient, str],
        sqlite_engine: Engine,
        settings: Settings,
        celery: RecordingCelery,
        sent: str | None,
    ) -> None:
        client, _ = alice
        assert_problem(self.upload(client, sent), 403, "csrf_failed")
        assert celery.queued == []
        with session_scope(sqlite_engine) as session:
            assert session.scalars(select(Build.id)).all() == []
        assert not settings.uploads_dir.exists() or list(settings.uploads_dir.iterdir()) == []

    def test_a_csrf_field_in_the_multipart_body_is_not_enough(
        self, alice: tuple[TestClient, str], celery: RecordingCelery
    ) -> None:
        client, csrf = alice
        assert_problem(self.upload(client, None, csrf_token=csrf), 403, "csrf_failed")
        assert celery.queued == []

    def test_a_bad_option_is_422_and_the_upload_is_discarded(
        self, alice: tuple[TestClient, str], settings: Settings, celery: RecordingCelery
    ) -> None:
        client, csrf = alice
        for fields in ({"tag": "Not A Tag"}, {"build_args": "no equals sign"}):
            assert_problem(self.upload(client, csrf, **fields), 422, "invalid_option")
        assert celery.queued == []
        assert list(settings.uploads_dir.iterdir()) == []

    def test_a_broken_archive_is_400(
        self, alice: tuple[TestClient, str], celery: RecordingCelery
    ) -> None:
        client, csrf = alice
        response = client.post(
            "/ui/builds",
            files={"source": ("x.zip", b"not a zip", "application/zip")},
            headers={"X-CSRF-Token": csrf},
        )
        assert_problem(response, 400, "archive_invalid")
        assert celery.queued == []

    def test_needs_a_session(self, new_client: ClientFactory, celery: RecordingCelery) -> None:
        assert_problem(self.upload(new_client(), "anything"), 403, "csrf_failed")
        assert celery.queued == []

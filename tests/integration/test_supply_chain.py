"""Supply chain over real databases, a real broker and real HTTP: the advisory database and its
command line, the SBOM/provenance/webhook/admin routes, and webhook deliveries to a receiver."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from adapters.broker import QUEUE, WEBHOOK_QUEUE, create_celery
from app.main import create_app
from core.access.tokens import create_token
from core.db import session_scope
from core.models import Advisory, Build, OwnerSettings, WebhookDelivery
from core.settings import Settings
from core.sources.intake import accept_source, new_upload_path
from core.sources.receive import receive_upload
from core.sources.store import FolderStore
from core.status import BuildStatus
from core.supply_chain.advisories import (
    AdvisorySourceInvalid,
    database_status,
    find_vulnerabilities,
    load_osv,
    replace_advisories,
)
from core.transitions import transition
from core.webhooks.message import SIGNATURE_HEADER, verify
from tests.conftest import ADMIN_TOKEN, ROOT, test_settings, zip_project
from tests.factories import queued_build, stored_source
from tests.integration.test_api import assert_problem, queued_messages
from worker.supply_chain import write_provenance, write_sbom
from worker.webhooks import (
    DELIVER,
    DELIVERED,
    FAILED,
    PENDING,
    deliver_once,
    deliver_webhook,
    enqueue_webhooks,
    resend_due,
    send_delivery,
)

ADVISORIES = ROOT / "tests" / "advisories"
DIGEST = "sha256:" + "d1" * 32


def finish_build(engine: Engine, build_id: str, status: BuildStatus, **values: Any) -> None:
    with session_scope(engine) as session:
        transition(session, build_id, BuildStatus.RUNNING, worker="test")
        transition(session, build_id, status)
        if values:
            session.execute(update(Build).where(Build.id == build_id).values(values))


class TestAdvisoryDatabase:
    def test_import_then_scan(self, engine: Engine) -> None:
        with session_scope(engine) as session:
            count = replace_advisories(session, load_osv(ADVISORIES), source="suite")
        assert count == 4
        with session_scope(engine) as session:
            findings = find_vulnerabilities(
                session, [("URLLib3", "1.26.4"), ("iniconfig", "2.0.0")]
            )
            status = database_status(session)
        assert [(f.id, f.fixed_version, f.severity) for f in findings] == [
            ("GHSA-q2q7-5pp4-w6pg", "1.26.5", "high"),
            ("GHSA-v845-jxx5-vc9f", "1.26.17", "medium"),
        ]
        assert findings[0].aliases == ["CVE-2021-33503", "PYSEC-2021-108"]
        assert findings[0].installed_version == "1.26.4"
        assert status.advisories == 4
        assert status.source == "suite"
        assert status.age_days() is not None

    def test_fixed_versions_have_no_findings(self, engine: Engine) -> None:
        with session_scope(engine) as session:
            replace_advisories(session, load_osv(ADVISORIES), source="suite")
        with session_scope(engine) as session:
            assert find_vulnerabilities(session, [("urllib3", "1.26.18")]) == []
            ids = [f.id for f in find_vulnerabilities(session, [("urllib3", "1.26.3")])]
        assert ids == ["GHSA-q2q7-5pp4-w6pg", "GHSA-5phf-pp7p-vc2r", "GHSA-v845-jxx5-vc9f"]

    def test_import_replaces_everything(self, engine: Engine) -> None:
        with session_scope(engine) as session:
            replace_advisories(session, load_osv(ADVISORIES), source="first")
        one = ADVISORIES / "GHSA-5phf-pp7p-vc2r.json"
        with session_scope(engine) as session:
            replace_advisories(session, load_osv(one), source="second")
        with session_scope(engine) as session:
            assert session.scalars(select(Advisory.id)).all() == ["GHSA-5phf-pp7p-vc2r"]
            assert database_status(session).source == "second"

    def test_a_failed_import_leaves_the_old_database(self, engine: Engine, tmp_path: Path) -> None:
        with session_scope(engine) as session:
            replace_advisories(session, load_osv(ADVISORIES), source="good")
        (tmp_path / "a.json").write_text((ADVISORIES / "GHSA-5phf-pp7p-vc2r.json").read_text())
        (tmp_path / "b.json").write_text("{broken")
        with pytest.raises(AdvisorySourceInvalid), session_scope(engine) as session:
            replace_advisories(session, load_osv(tmp_path), source="bad")
        with session_scope(engine) as session:
            assert database_status(session).advisories == 4


def admin_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"IMAGEBUILDER_DATA_DIR": str(settings.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "core.admin", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


class TestAdminCommandLine:
    def test_import_and_status(self, settings: Settings, sqlite_engine: Engine) -> None:
        before = admin_cli(settings, "advisories", "status")
        assert before.returncode == 1
        assert "no advisory database" in before.stdout
        loaded = admin_cli(settings, "advisories", "import", str(ADVISORIES))
        assert loaded.returncode == 0, loaded.stderr
        assert "imported 4 PyPI and Debian advisories" in loaded.stdout
        after = admin_cli(settings, "advisories", "status")
        assert after.returncode == 0
        assert "4 advisories, imported 0.0 days ago" in after.stdout

    def test_a_source_without_pypi_advisories_changes_nothing(
        self, settings: Settings, sqlite_engine: Engine, tmp_path: Path
    ) -> None:
        admin_cli(settings, "advisories", "import", str(ADVISORIES))
        npm = {"id": "GHSA-npm", "affected": [{"package": {"ecosystem": "npm", "name": "x"}}]}
        (tmp_path / "npm.json").write_text(json.dumps(npm))
        refused = admin_cli(settings, "advisories", "import", str(tmp_path))
        assert refused.returncode == 1
        assert "no PyPI or Debian advisory" in refused.stderr
        with session_scope(sqlite_engine) as session:
            assert database_status(session).advisories == 4

    def test_builds_on_a_base_digest(self, settings: Settings, sqlite_engine: Engine) -> None:
        build_id = queued_build(sqlite_engine)
        finish_build(sqlite_engine, build_id, BuildStatus.SUCCEEDED, base_image_digest=DIGEST)
        listed = admin_cli(settings, "builds", "--base-digest", DIGEST)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith(f"{build_id}\talice\tsucceeded")


# --- routes -------------------------------------------------------------------------------------


@pytest.fixture
def client(settings: Settings, sqlite_engine: Engine, redis_url: str) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = (
            f"Bearer {settings.bootstrap_token.get_secret_value()}"  # type: ignore[union-attr]
        )
        yield test_client


def token_for(engine: Engine, owner: str) -> dict[str, str]:
    with session_scope(engine) as session:
        secret = create_token(session, owner=owner).secret
    return {"Authorization": f"Bearer {secret}"}


class TestArtifactRoutes:
    def test_sbom_and_provenance_once_written(
        self, client: TestClient, sqlite_engine: Engine
    ) -> None:
        build_id = queued_build(sqlite_engine, owner="alice")
        alice = token_for(sqlite_engine, "alice")
        missing = client.get(f"/api/v1/builds/{build_id}/sbom", headers=alice)
        assert_problem(missing, 404, "artifact_not_available")
        assert_problem(
            client.get(f"/api/v1/builds/{build_id}/provenance", headers=alice),
            404,
            "artifact_not_available",
        )
        write_sbom(sqlite_engine, build_id, {"bomFormat": "CycloneDX", "specVersion": "1.5"})
        write_provenance(sqlite_engine, build_id, {"_type": "https://in-toto.io/Statement/v1"})
        sbom = client.get(f"/api/v1/builds/{build_id}/sbom", headers=alice)
        assert sbom.status_code == 200
        assert sbom.headers["content-type"].startswith("application/vnd.cyclonedx+json")
        assert sbom.json()["bomFormat"] == "CycloneDX"
        provenance = client.get(f"/api/v1/builds/{build_id}/provenance", headers=alice)
        assert provenance.json()["_type"] == "https://in-toto.io/Statement/v1"

    def test_another_owners_build_is_not_found(
        self, client: TestClient, sqlite_engine: Engine
    ) -> None:
        build_id = queued_build(sqlite_engine, owner="alice")
        write_sbom(sqlite_engine, build_id, {"bomFormat": "CycloneDX"})
        bob = token_for(sqlite_engine, "bob")
        for what in ("sbom", "provenance", "image"):
            response = client.get(f"/api/v1/builds/{build_id}/{what}", headers=bob)
            assert_problem(response, 404, "build_not_found")

    def test_no_image_to_export_before_success(
        self, client: TestClient, sqlite_engine: Engine
    ) -> None:
        build_id = queued_build(sqlite_engine)
        assert_problem(client.get(f"/api/v1/builds/{build_id}/image"), 409, "image_unavailable")

    def test_an_api_without_the_build_daemon_points_at_the_registry(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # No daemon anywhere this API could reach: it must not need one.
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        app = create_app(settings.model_copy(update={"api_docker_access": False}))
        build_id = queued_build(sqlite_engine)
        reference = "registry:5000/ci/admin/app:1"
        finish_build(
            sqlite_engine,
            build_id,
            BuildStatus.SUCCEEDED,
            image_id="sha256:" + "ab" * 32,
            push={"status": "succeeded", "reference": reference, "digest": DIGEST},
        )
        with TestClient(app, raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            export = client.get(f"/api/v1/builds/{build_id}/image")
            assert_problem(export, 409, "image_unavailable")
            assert f"docker pull {reference}@{DIGEST}" in export.json()["detail"]
            ready = client.get("/readyz")
            assert ready.json()["checks"]["docker"] == "ok"
            plan = client.post("/api/v1/plan", files={"source": ("p.zip", zip_project("passing"))})
            assert plan.status_code == 200, plan.text

    def test_routes_are_in_the_openapi_document(self, client: TestClient) -> None:
        paths = client.get("/openapi.json").json()["paths"]
        assert (
            "application/vnd.cyclonedx+json"
            in (paths["/api/v1/builds/{build_id}/sbom"]["get"]["responses"]["200"]["content"])
        )
        assert (
            "application/x-tar"
            in (paths["/api/v1/builds/{build_id}/image"]["get"]["responses"]["200"]["content"])
        )
        assert "404" in paths["/api/v1/builds/{build_id}/provenance"]["get"]["responses"]
        assert "422" in paths["/api/v1/owner/webhook"]["put"]["responses"]
        assert "403" in paths["/api/v1/admin/rebuild"]["post"]["responses"]


class TestOwnerWebhookRoute:
    def test_set_rotate_and_read(self, client: TestClient, sqlite_engine: Engine) -> None:
        alice = token_for(sqlite_engine, "alice")
        first = client.put(
            "/api/v1/owner/webhook", json={"url": "https://hooks.example.com/in"}, headers=alice
        )
        assert first.status_code == 200, first.text
        assert first.json()["owner"] == "alice"
        assert first.json()["secret"].startswith("whsec_")
        same = client.put(
            "/api/v1/owner/webhook", json={"url": "https://hooks.example.com/2"}, headers=alice
        )
        assert same.json()["secret"] == first.json()["secret"]
        rotated = client.put(
            "/api/v1/owner/webhook",
            json={"url": "https://hooks.example.com/2", "rotate_secret": True},
            headers=alice,
        )
        assert rotated.json()["secret"] != first.json()["secret"]
        read = client.get("/api/v1/owner/webhook", headers=alice)
        assert read.json() == rotated.json()

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8080/x", "http://169.254.169.254/latest", "ftp://example.com/"]
    )
    def test_internal_or_odd_urls_are_refused(
        self, client: TestClient, sqlite_engine: Engine, url: str
    ) -> None:
        alice = token_for(sqlite_engine, "alice")
        response = client.put("/api/v1/owner/webhook", json={"url": url}, headers=alice)
        assert_problem(response, 422, "webhook_url_refused")


def stored_build(settings: Settings, engine: Engine, owner: str) -> str:
    """A build whose source is really stored (so it can be rebuilt)."""
    uploaded = receive_upload(
        [zip_project("passing")], new_upload_path(settings), settings.max_upload_bytes
    )
    source = accept_source(uploaded, "passing.zip", settings, FolderStore(settings.sources_dir))
    return queued_build(engine, owner=owner, source=source)


class TestAdminRoutes:
    def test_admin_only(self, client: TestClient, sqlite_engine: Engine) -> None:
        alice = token_for(sqlite_engine, "alice")
        response = client.get(f"/api/v1/admin/builds?base_digest={DIGEST}", headers=alice)
        assert_problem(response, 403, "forbidden")
        response = client.post(f"/api/v1/admin/rebuild?base_digest={DIGEST}", headers=alice)
        assert_problem(response, 403, "forbidden")

    def test_digest_must_look_like_one(self, client: TestClient) -> None:
        assert_problem(client.get("/api/v1/admin/builds?base_digest=latest"), 422, "invalid_option")

    def test_list_and_rebuild_builds_on_a_base(
        self, client: TestClient, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        older = stored_build(settings, sqlite_engine, "alice")
        newer = stored_build(settings, sqlite_engine, "alice")  # same owner and tag scheme
        gone = queued_build(sqlite_engine, owner="bob", source=stored_source())
        other_base = stored_build(settings, sqlite_engine, "carol")
        for build_id in (older, newer, gone):
            finish_build(sqlite_engine, build_id, BuildStatus.SUCCEEDED, base_image_digest=DIGEST)
        with session_scope(sqlite_engine) as session:
            session.execute(update(Build).where(Build.id == older).values(image_tag="app:1"))
            session.execute(update(Build).where(Build.id == newer).values(image_tag="app:1"))
        finish_build(
            sqlite_engine, other_base, BuildStatus.SUCCEEDED, base_image_digest="sha256:" + "e" * 64
        )

        listed = client.get(f"/api/v1/admin/builds?base_digest={DIGEST}")
        assert listed.status_code == 200
        assert [b["id"] for b in listed.json()["items"]] == [gone, newer, older]

        response = client.post(f"/api/v1/admin/rebuild?base_digest={DIGEST}")
        assert response.status_code == 202, response.text
        body = response.json()
        assert [item["rebuild_of"] for item in body["queued"]] == [newer]
        assert body["skipped"] == [{"id": gone, "reason": "source_unavailable"}]
        new_id = body["queued"][0]["id"]
        assert queued_messages(redis_url) == [new_id]
        with session_scope(sqlite_engine) as session:
            rebuilt = session.get_one(Build, new_id)
            assert (rebuilt.owner, rebuilt.rebuild_of, rebuilt.status) == (
                "alice",
                newer,
                BuildStatus.QUEUED,
            )


# --- webhook deliveries -------------------------------------------------------------------------


@dataclass
class Receiver:
    """A local HTTP endpoint answering with the next queued status (then 200)."""

    statuses: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/build?src=test"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def hook_settings(tmp_path: Path) -> Settings:
    return test_settings(
        tmp_path / "data",
        webhook_allow_private_addresses=True,
        webhook_backoff_seconds=2.0,
        webhook_max_attempts=3,
        webhook_timeout_seconds=5.0,
    )


@pytest.fixture
def hook_engine(hook_settings: Settings) -> Iterator[Engine]:
    from core.db import make_engine
    from tests.conftest import migrate

    hook_settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(hook_settings.sqlalchemy_url)
    engine = make_engine(hook_settings.sqlalchemy_url)
    yield engine
    engine.dispose()


def ended_build(engine: Engine, callback_url: str | None, owner: str = "alice") -> str:
    build_id = queued_build(engine, owner=owner)
    finish_build(engine, build_id, BuildStatus.SUCCEEDED, callback_url=callback_url)
    return build_id


def delivery(engine: Engine, delivery_id: int) -> WebhookDelivery:
    with session_scope(engine) as session:
        return session.get_one(WebhookDelivery, delivery_id)


def owner_secret(engine: Engine, owner: str) -> str:
    with session_scope(engine) as session:
        return session.get_one(OwnerSettings, owner).webhook_secret or ""


class TestWebhookDelivery:
    def test_signed_delivery_retried_after_a_500(
        self, hook_settings: Settings, hook_engine: Engine, receiver: Receiver
    ) -> None:
        receiver.statuses = [500]
        build_id = ended_build(hook_engine, receiver.url)
        sent: list[tuple[int, float]] = []
        (delivery_id,) = enqueue_webhooks(
            build_id,
            settings=hook_settings,
            engine=hook_engine,
            send=lambda i, countdown: sent.append((i, countdown)),
        )
        assert sent == [(delivery_id, 0)]

        first = deliver_once(hook_settings, hook_engine, delivery_id)
        assert first is not None
        assert (first.status, first.retry_in, first.response_status) == (PENDING, 2.0, 500)
        row = delivery(hook_engine, delivery_id)
        assert (row.status, row.attempts, row.response_status, row.error) == (
            PENDING,
            1,
            500,
            "HTTP 500",
        )
        assert row.next_attempt_at is not None

        second = deliver_once(hook_settings, hook_engine, delivery_id)
        assert second is not None
        assert second.status == DELIVERED
        row = delivery(hook_engine, delivery_id)
        assert (row.status, row.attempts, row.response_status) == (DELIVERED, 2, 200)
        assert row.delivered_at is not None
        assert deliver_once(hook_settings, hook_engine, delivery_id) is None  # done: nothing sent

        secret = owner_secret(hook_engine, "alice")
        assert len(receiver.requests) == 2
        (_, body_1), (_, body_2) = receiver.requests
        assert body_1 == body_2  # a retry resends the same bytes
        for headers, body in receiver.requests:
            assert verify(secret, body, headers[SIGNATURE_HEADER.lower()])
            assert headers["x-imagebuilder-delivery"] == str(delivery_id)
            assert headers["host"] == f"127.0.0.1:{receiver.port}"
        message = json.loads(body_1)
        assert message["event"] == "build.finished"
        assert message["build"]["id"] == build_id
        assert message["build"]["status"] == "succeeded"
        assert message["build"]["links"]["self"] == f"/api/v1/builds/{build_id}"

    def test_the_owner_default_and_the_build_url_both_hear(
        self, hook_settings: Settings, hook_engine: Engine, receiver: Receiver
    ) -> None:
        with session_scope(hook_engine) as session:
            session.add(
                OwnerSettings(
                    owner="alice", webhook_url=receiver.url + "&default", webhook_secret="k" * 32
                )
            )
        build_id = ended_build(hook_engine, receiver.url)
        ids = enqueue_webhooks(
            build_id, settings=hook_settings, engine=hook_engine, send=lambda *_: None
        )
        assert len(ids) == 2
        assert (
            enqueue_webhooks(
                build_id, settings=hook_settings, engine=hook_engine, send=lambda *_: None
            )
            == []
        )  # once per URL
        for delivery_id in ids:
            deliver_once(hook_settings, hook_engine, delivery_id)
        assert all(
            verify("k" * 32, body, h[SIGNATURE_HEADER.lower()]) for h, body in receiver.requests
        )

    def test_gives_up_after_the_last_attempt(
        self, hook_settings: Settings, hook_engine: Engine, receiver: Receiver
    ) -> None:
        receiver.statuses = [503, 502, 500]
        (delivery_id,) = enqueue_webhooks(
            ended_build(hook_engine, receiver.url),
            settings=hook_settings,
            engine=hook_engine,
            send=lambda *_: None,
        )
        retries = []
        for _ in range(3):
            attempt = deliver_once(hook_settings, hook_engine, delivery_id)
            assert attempt is not None
            retries.append(attempt.retry_in)
        assert retries == [2.0, 4.0, None]
        row = delivery(hook_engine, delivery_id)
        assert (row.status, row.attempts, row.response_status) == (FAILED, 3, 500)

    def test_internal_destination_fails_at_once_without_a_request(
        self, settings: Settings, sqlite_engine: Engine, receiver: Receiver
    ) -> None:
        # Default settings: internal addresses refused, the receiver on 127.0.0.1 included.
        (delivery_id,) = enqueue_webhooks(
            ended_build(sqlite_engine, receiver.url),
            settings=settings,
            engine=sqlite_engine,
            send=lambda *_: None,
        )
        attempt = deliver_once(settings, sqlite_engine, delivery_id)
        assert attempt is not None
        assert (attempt.status, attempt.retry_in) == (FAILED, None)
        row = delivery(sqlite_engine, delivery_id)
        assert row.status == FAILED
        assert "loopback" in (row.error or "")
        assert receiver.requests == []

    def test_unreachable_receiver_is_retried(
        self, hook_settings: Settings, hook_engine: Engine, receiver: Receiver
    ) -> None:
        url = f"http://127.0.0.1:{receiver.port}/x"
        (delivery_id,) = enqueue_webhooks(
            ended_build(hook_engine, url),
            settings=hook_settings,
            engine=hook_engine,
            send=lambda *_: None,
        )
        with session_scope(hook_engine) as session:  # the receiver moved away
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(url="http://127.0.0.1:9/x")
            )
        attempt = deliver_once(hook_settings, hook_engine, delivery_id)
        assert attempt is not None
        assert (attempt.status, attempt.retry_in) == (PENDING, 2.0)
        assert "ConnectError" in (attempt.error or "")

    def test_no_url_no_delivery(self, hook_settings: Settings, hook_engine: Engine) -> None:
        build_id = ended_build(hook_engine, None)
        assert (
            enqueue_webhooks(
                build_id, settings=hook_settings, engine=hook_engine, send=lambda *_: None
            )
            == []
        )

    def test_messages_go_through_the_broker(
        self, hook_settings: Settings, hook_engine: Engine, receiver: Receiver, redis_url: str
    ) -> None:
        celery = create_celery(hook_settings)
        send = functools.partial(send_delivery, celery)
        (delivery_id,) = enqueue_webhooks(
            ended_build(hook_engine, receiver.url),
            settings=hook_settings,
            engine=hook_engine,
            send=send,
        )
        client = redis.Redis.from_url(redis_url)
        raw = client.lrange(WEBHOOK_QUEUE, 0, -1)
        # Never on the builds queue: a slow receiver must not hold a build worker's slot.
        assert client.llen(QUEUE) == 0
        client.close()
        (message,) = [json.loads(m) for m in raw]
        assert message["headers"]["task"] == DELIVER
        assert message["headers"]["argsrepr"] in (f"[{delivery_id}]", f"({delivery_id},)")
        # A message lost by the broker: the delivery is re-sent once it is overdue.
        later = delivery(hook_engine, delivery_id).created_at.replace(year=2099)
        resent: list[int] = []
        assert resend_due(hook_engine, lambda i, _c: resent.append(i), now=later) == [delivery_id]

    def test_the_task_delivers(
        self,
        hook_settings: Settings,
        hook_engine: Engine,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        (delivery_id,) = enqueue_webhooks(
            ended_build(hook_engine, receiver.url),
            settings=hook_settings,
            engine=hook_engine,
            send=lambda *_: None,
        )
        monkeypatch.setenv("IMAGEBUILDER_DATA_DIR", str(hook_settings.data_dir))
        monkeypatch.setenv("IMAGEBUILDER_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")
        from core.settings import get_settings

        get_settings.cache_clear()
        try:
            assert deliver_webhook(delivery_id) == DELIVERED
        finally:
            get_settings.cache_clear()
        assert len(receiver.requests) == 1

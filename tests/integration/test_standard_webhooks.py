"""Deliveries verified the way a receiver would: with the `standardwebhooks` library, from the
secrets the API hands out, across a secret rotation."""

# ruff: noqa: F401, F811  (the webhook fixtures of test_supply_chain are imported, then requested)

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from standardwebhooks import Webhook, WebhookVerificationError

from app.main import create_app
from core.access.tokens import BOOTSTRAP_OWNER
from core.db import session_scope, utcnow
from core.models import OwnerSettings
from core.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.integration.test_supply_chain import (
    Receiver,
    ended_build,
    hook_engine,
    hook_settings,
    receiver,
)
from worker.webhooks import deliver_once, enqueue_webhooks

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def deliver(settings: Settings, engine: Engine, receiver: Receiver) -> tuple[dict[str, str], bytes]:
    build_id = ended_build(engine, receiver.url, owner=BOOTSTRAP_OWNER)
    (delivery_id,) = enqueue_webhooks(
        build_id, settings=settings, engine=engine, send=lambda *_: None
    )
    deliver_once(settings, engine, delivery_id)
    return receiver.requests[-1]


class TestReceiverWithTheLibrary:
    def test_a_delivery_verifies_with_the_secret_the_api_returns(
        self, hook_settings: Settings, hook_engine: Engine, receiver: Receiver
    ) -> None:
        with TestClient(create_app(hook_settings)) as client:
            secret = client.get("/api/v1/owner/webhook", headers=AUTH).json()["secret"]
        assert secret.startswith("whsec_")
        headers, body = deliver(hook_settings, hook_engine, receiver)
        message = Webhook(secret).verify(body, headers)
        assert message["event"] == "build.finished"
        assert headers["webhook-id"] == f"msg_{message['delivery']}"
        assert "x-imagebuilder-signature" in headers  # the deprecated header, for one release
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body.replace(b"succeeded", b"failed"), headers)

    def test_after_a_rotation_both_secrets_verify_until_the_old_one_expires(
        self, hook_settings: Settings, hook_engine: Engine, receiver: Receiver
    ) -> None:
        with TestClient(create_app(hook_settings)) as client:
            old = client.get("/api/v1/owner/webhook", headers=AUTH).json()["secret"]
            rotated = client.put(
                "/api/v1/owner/webhook",
                headers=AUTH,
                json={"url": None, "rotate_secret": True, "previous_secret_seconds": 3600},
            ).json()
        new = rotated["secret"]
        assert new != old
        assert len(rotated["previous_secrets_expire_at"]) == 1
        headers, body = deliver(hook_settings, hook_engine, receiver)
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):
            assert json.loads(body) == Webhook(secret).verify(body, headers)

        with session_scope(hook_engine) as session:  # the grace period ends
            row = session.get_one(OwnerSettings, BOOTSTRAP_OWNER)
            expired = [
                entry | {"expires_at": (utcnow() - timedelta(seconds=1)).isoformat()}
                for entry in row.webhook_previous_secrets or []
            ]
            session.execute(
                update(OwnerSettings)
                .where(OwnerSettings.owner == BOOTSTRAP_OWNER)
                .values(webhook_previous_secrets=expired)
            )
        headers, body = deliver(hook_settings, hook_engine, receiver)
        assert len(headers["webhook-signature"].split(" ")) == 1
        Webhook(new).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(body, headers)

    def test_a_secret_stock_receivers_cannot_use_is_refused(
        self, hook_settings: Settings, hook_engine: Engine
    ) -> None:
        with TestClient(create_app(hook_settings)) as client:
            before = client.get("/api/v1/owner/webhook", headers=AUTH).json()["secret"]
            refused = client.put(
                "/api/v1/owner/webhook", headers=AUTH, json={"url": None, "secret": "x" * 40}
            )
            after = client.get("/api/v1/owner/webhook", headers=AUTH).json()["secret"]
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert "whsec_" in refused.json()["detail"]
        assert after == before

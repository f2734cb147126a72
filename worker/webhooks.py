"""Webhook deliveries: one Celery task per delivery attempt, retried with exponential backoff.

    enqueue_webhooks(build_id)   after a build's terminal transition: one WebhookDelivery row per
                                 destination (the build's callback_url, the owner's default),
                                 committed, then a "webhooks.deliver" message for each
    deliver_once(...)            one attempt: check the destination (core.webhooks.message), POST
                                 the signed body to the checked address, record the outcome; returns
                                 when to try again
    resend_due(...)              re-sends deliveries whose message the broker lost

Attempts, the last response status or error and the next attempt's time are kept on the row; after
`webhook_max_attempts` the delivery is `failed`. A refused destination fails at once: retrying
cannot make it allowed. The owner's secret is created on first use (see /api/v1/owner/webhook).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from celery import Celery
from sqlalchemy import Engine, exists, or_, select, update
from sqlalchemy.orm import Session

from core.access.caller import Caller
from core.builds.resources import build_out
from core.builds.service import get_build
from core.db import get_engine, session_scope, utcnow
from core.errors import WebhookRefused
from core.models import Build, OwnerSettings, WebhookDelivery
from core.settings import Settings, get_settings
from core.webhooks.message import (
    Resolver,
    Target,
    UnresolvableHost,
    headers,
    new_secret,
    payload,
    resolve_target,
    system_resolver,
)
from core.webhooks.signing import active_secrets
from worker.celery_app import celery_app

log = logging.getLogger(__name__)

DELIVER = "webhooks.deliver"
SWEEP = "webhooks.sweep"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_BACKOFF_SECONDS = 3600.0
# A pending delivery this late has lost its message.
LOST_AFTER_SECONDS = 120.0
Send = Callable[[int, float], object]


def backoff_seconds(settings: Settings, attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt: base, 2x base, 4x base, ... (capped)."""
    return float(min(settings.webhook_backoff_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))


def send_delivery(app: Celery, delivery_id: int, countdown: float = 0) -> bool:
    try:
        app.send_task(DELIVER, args=[delivery_id], countdown=countdown or None)
    except Exception as exc:  # kombu raises OperationalError and socket errors of many kinds
        log.warning("could not queue webhook delivery %s (resent later): %s", delivery_id, exc)
        return False
    return True


def plan_deliveries(session: Session, build_id: str, now: datetime | None = None) -> list[int]:
    """Create the pending deliveries of a terminal build (once per URL); returns their ids."""
    now = now or utcnow()
    build = session.get(Build, build_id)
    if build is None or not build.status.terminal:
        return []
    owner = session.get(OwnerSettings, build.owner)
    urls = [url for url in (build.callback_url, owner.webhook_url if owner else None) if url]
    urls = list(dict.fromkeys(urls))
    if not urls:
        return []
    if owner is None:
        owner = OwnerSettings(owner=build.owner, webhook_url=None, webhook_secret=new_secret())
        session.add(owner)
    elif not owner.webhook_secret:
        owner.webhook_secret = new_secret()
    done = set(
        session.scalars(select(WebhookDelivery.url).where(WebhookDelivery.build_id == build_id))
    )
    deliveries = [
        WebhookDelivery(
            build_id=build_id,
            url=url,
            status=PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
        for url in urls
        if url not in done
    ]
    session.add_all(deliveries)
    session.flush()
    return [delivery.id for delivery in deliveries]


def enqueue_webhooks(
    build_id: str,
    *,
    settings: Settings | None = None,
    engine: Engine | None = None,
    send: Send | None = None,
) -> list[int]:
    """Record and queue the webhook deliveries of a build that just ended. Never raises for a
    broker fault: the rows are committed first and `resend_due` picks up unsent ones."""
    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    send = send or functools.partial(send_delivery, celery_app)
    with session_scope(engine) as session:
        ids = plan_deliveries(session, build_id)
    for delivery_id in ids:
        send(delivery_id, 0)
    return ids


@dataclass(frozen=True)
class Attempt:
    status: str  # the delivery's status after this attempt
    retry_in: float | None = None
    response_status: int | None = None
    error: str | None = None


def _tls_context() -> ssl.SSLContext:
    # The system's trust store (SSL_CERT_FILE honoured by OpenSSL), never proxy settings.
    return ssl.create_default_context()


def post(
    url: str,
    body: bytes,
    request_headers: dict[str, str],
    *,
    settings: Settings,
    resolver: Resolver = system_resolver,
) -> int:
    """POST `body` to `url` through one of its checked addresses; returns the HTTP status.
    Raises WebhookRefused for a refused destination, httpx.HTTPError when it cannot be reached or
    has not answered within `webhook_deadline_seconds` all told (a receiver that trickles its
    answer a byte at a time never holds a delivery slot longer than that)."""
    target, addresses = resolve_target(
        url, allow_private=settings.webhook_allow_private_addresses, resolver=resolver
    )
    deadline = settings.webhook_deadline_seconds
    try:
        return asyncio.run(
            asyncio.wait_for(_post(target, addresses, body, request_headers, settings), deadline)
        )
    except TimeoutError as exc:
        raise httpx.TimeoutException(
            f"the receiver did not answer within the {deadline:g} s deadline"
        ) from exc


async def _post(
    target: Target,
    addresses: list[str],
    body: bytes,
    request_headers: dict[str, str],
    settings: Settings,
) -> int:
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    last_error: httpx.HTTPError | None = None
    async with httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: the checked address is the one used
        verify=_tls_context(),
    ) as client:
        for address in addresses:
            try:
                async with client.stream(
                    "POST",
                    target.url_for(address),
                    content=body,
                    headers=request_headers | {"Host": target.host_header},
                    extensions=extensions,
                ) as response:
                    return response.status_code  # the body is never read
            except httpx.ConnectError as exc:
                last_error = exc  # try the host's next address
    assert last_error is not None
    raise last_error


def deliver_once(
    settings: Settings,
    engine: Engine,
    delivery_id: int,
    *,
    resolver: Resolver = system_resolver,
) -> Attempt | None:
    """One attempt at a pending delivery, recorded on its row; None if it is not pending (a
    duplicate message, or already done)."""
    with session_scope(engine) as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != PENDING:
            return None
        attempts, url = delivery.attempts, delivery.url
        build = get_build(
            session, delivery.build_id, Caller("system", admin=True), with_events=True
        )
        owner = session.get(OwnerSettings, build.owner)
        secret = owner.webhook_secret if owner is not None else None
        if not secret:
            secret = new_secret()
            if owner is None:
                session.add(OwnerSettings(owner=build.owner, webhook_secret=secret))
            else:
                owner.webhook_secret = secret
        signing = active_secrets(
            secret, owner.webhook_previous_secrets if owner is not None else None, utcnow()
        )
        resource = _resource(build)
    body = payload(delivery_id, resource)
    attempt = _attempt(settings, url, body, headers(signing, delivery_id, body), attempts, resolver)
    now = utcnow()
    values: dict[str, object] = {
        "status": attempt.status,
        "attempts": attempts + 1,
        "response_status": attempt.response_status,
        "error": attempt.error,
        "next_attempt_at": now + timedelta(seconds=attempt.retry_in) if attempt.retry_in else None,
    }
    if attempt.status == DELIVERED:
        values["delivered_at"] = now
    with session_scope(engine) as session:
        moved = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == PENDING,
                WebhookDelivery.attempts == attempts,
            )
            .values(values)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return None  # another worker recorded this attempt first
    log.info(
        "webhook delivery %s to %s: %s (attempt %s)", delivery_id, url, attempt.status, attempts + 1
    )
    return attempt


def _resource(build: Build) -> dict[str, object]:
    """The build resource exactly as the API serves it."""
    resource: dict[str, object] = build_out(build).model_dump(mode="json")
    return resource


def _attempt(
    settings: Settings,
    url: str,
    body: bytes,
    request_headers: dict[str, str],
    attempts: int,
    resolver: Resolver,
) -> Attempt:
    number = attempts + 1
    retry_in = backoff_seconds(settings, number) if number < settings.webhook_max_attempts else None
    again = PENDING if retry_in is not None else FAILED
    try:
        status = post(url, body, request_headers, settings=settings, resolver=resolver)
    except UnresolvableHost as exc:
        return Attempt(again, retry_in, error=exc.detail)
    except WebhookRefused as exc:
        return Attempt(FAILED, None, error=exc.detail)
    except httpx.HTTPError as exc:
        return Attempt(again, retry_in, error=f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= status < 300:
        return Attempt(DELIVERED, None, response_status=status)
    return Attempt(again, retry_in, response_status=status, error=f"HTTP {status}")


def resend_due(engine: Engine, send: Send, now: datetime | None = None) -> list[int]:
    """Re-send pending deliveries whose attempt is long overdue (their message was lost)."""
    now = now or utcnow()
    overdue = now - timedelta(seconds=LOST_AFTER_SECONDS)
    with session_scope(engine) as session:
        ids = list(
            session.scalars(
                select(WebhookDelivery.id).where(
                    WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at < overdue
                )
            )
        )
        if ids:
            # Touched, so each is re-sent at most once per interval.
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids), WebhookDelivery.status == PENDING)
                .values(next_attempt_at=now)
            )
    for delivery_id in ids:
        send(delivery_id, 0)
    return ids


@celery_app.task(name=DELIVER)
def deliver_webhook(delivery_id: int) -> str | None:
    settings = get_settings()
    attempt = deliver_once(settings, get_engine(settings), delivery_id)
    if attempt is not None and attempt.retry_in is not None:
        send_delivery(celery_app, delivery_id, attempt.retry_in)
    return None if attempt is None else attempt.status


def plan_missing(engine: Engine, since: timedelta = timedelta(days=1)) -> list[int]:
    """Deliveries for builds that ended without any planned yet: every way a build can end (the
    worker, the sweeper, a cancel in the API) is covered without each having to remember."""
    cutoff = utcnow() - since
    with session_scope(engine) as session:
        has_target = or_(
            Build.callback_url.is_not(None),
            Build.owner.in_(
                select(OwnerSettings.owner).where(OwnerSettings.webhook_url.is_not(None))
            ),
        )
        ended = session.scalars(
            select(Build.id).where(
                Build.finished_at > cutoff,
                has_target,
                ~exists().where(WebhookDelivery.build_id == Build.id),
            )
        ).all()
        return [delivery for build_id in ended for delivery in plan_deliveries(session, build_id)]


@celery_app.task(name=SWEEP)
def sweep_webhooks() -> list[int]:
    settings = get_settings()
    engine = get_engine(settings)
    send = functools.partial(send_delivery, celery_app)
    for delivery_id in plan_missing(engine):
        send(delivery_id, 0)
    return resend_due(engine, send)

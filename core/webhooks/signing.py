"""Webhook signatures per the Standard Webhooks specification (standardwebhooks.com), so receivers
verify with a stock library in their language.

Every delivery carries `webhook-id` (the same on every retry: receivers drop repeats),
`webhook-timestamp` (Unix seconds of this attempt: receivers refuse old ones, so a captured
delivery cannot be replayed later) and `webhook-signature`: space-separated `v1,<base64>` entries,
each the HMAC-SHA256 of `<id>.<timestamp>.<body>` keyed with one active secret.

Secrets are `whsec_` followed by base64 of 32 random bytes; the key is the decoded bytes.
Rotation: replacing the secret keeps the previous one active for a grace period, and the
signature header lists one signature per active secret, so receivers can switch at their pace.
Secrets made before this format (`whsec_` + URL-safe text) still sign, keyed with their text,
which stock libraries cannot decode: rotate them (`PUT /api/v1/owner/webhook` with
`rotate_secret`).

The old header `X-Imagebuilder-Signature: sha256=<hex HMAC of the body>` (current secret, key as
text) is still sent, for one release.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
PREFIX = "whsec_"
# The specification's bounds on a key's length.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
MAX_PREVIOUS_SECRETS = 5


class SecretInvalid(ValueError):
    """A secret given by a user is not `whsec_` + base64 of 24 to 64 bytes."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _decode(secret: str) -> bytes | None:
    text = secret.removeprefix(PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES else None


def check_secret(secret: str) -> str:
    """A secret a user chose, refused unless stock receivers can use it."""
    if not secret.startswith(PREFIX) or _decode(secret) is None:
        raise SecretInvalid(
            "A webhook secret is 'whsec_' followed by the base64 of 24 to 64 random bytes "
            "(omit it to get a new random one)."
        )
    return secret


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: its decoded bytes, or for a secret of the older format its text."""
    key = _decode(secret)
    return key if key is not None else secret.encode("utf-8")


def message_id(delivery_id: int) -> str:
    return f"msg_{delivery_id}"


def signature(secrets_: Sequence[str], message: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per active secret."""
    signed = f"{message}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(signing_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets_
    )


def verify(secret: str, message: str, timestamp: int, body: bytes, header: str) -> bool:
    """Whether any `v1` entry of a `webhook-signature` value was made with `secret`."""
    expected = signature([secret], message, timestamp, body)
    return any(hmac.compare_digest(expected, entry) for entry in header.split(" "))


def active_secrets(
    current: str | None, previous: Iterable[dict[str, Any]] | None, now: datetime
) -> list[str]:
    """The secrets a delivery is signed with now: the current one first, then previous ones whose
    grace period has not ended."""
    found = [current] if current else []
    for entry in previous or ():
        expires = _expiry(entry)
        secret = entry.get("secret")
        if isinstance(secret, str) and expires is not None and expires > now:
            found.append(secret)
    return list(dict.fromkeys(found))


def retire(
    current: str | None,
    previous: Iterable[dict[str, Any]] | None,
    now: datetime,
    grace: timedelta,
) -> list[dict[str, Any]]:
    """The previous secrets after `current` is replaced: it stays active for `grace` (not at all
    for zero); expired entries are dropped, and at most MAX_PREVIOUS_SECRETS are kept."""
    kept = [
        entry
        for entry in previous or ()
        if (expires := _expiry(entry)) is not None and expires > now and entry.get("secret")
    ]
    if current and grace > timedelta(0):
        kept.insert(0, {"secret": current, "expires_at": (now + grace).isoformat()})
    return kept[:MAX_PREVIOUS_SECRETS]


def _expiry(entry: dict[str, Any]) -> datetime | None:
    try:
        expires = datetime.fromisoformat(str(entry.get("expires_at")))
    except ValueError:
        return None
    return expires if expires.tzinfo is not None else None

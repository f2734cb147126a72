"""core.webhooks.message: the signature receivers check, and the addresses a webhook may never
reach."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from core.errors import WebhookRefused
from core.webhooks import signing as webhook_signing
from core.webhooks.message import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    UnresolvableHost,
    headers,
    new_secret,
    parse_target,
    payload,
    refused_reason,
    resolve_target,
    sign,
    system_resolver,
    verify,
)


class TestSignature:
    def test_receiver_recomputes_it_with_hmac_over_the_exact_body(self) -> None:
        secret = new_secret()
        body = payload(7, {"id": "b_1", "status": "succeeded"})
        sent = headers(secret, 7, body)
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert sent[SIGNATURE_HEADER] == f"sha256={expected}"
        assert hmac.compare_digest(sent[SIGNATURE_HEADER], "sha256=" + expected)
        assert sent[EVENT_HEADER] == "build.finished"
        assert sent[DELIVERY_HEADER] == "7"

    def test_any_change_to_the_body_or_secret_breaks_it(self) -> None:
        body = payload(1, {"id": "b_1"})
        signature = sign("s" * 32, body)
        assert verify("s" * 32, body, signature)
        assert not verify("s" * 32, body.replace(b"b_1", b"b_2"), signature)
        assert not verify("t" * 32, body, signature)

    def test_payload_is_the_build_resource_with_the_delivery_id(self) -> None:
        body = json.loads(payload(3, {"id": "b_1", "status": "failed"}))
        assert body == {
            "event": "build.finished",
            "delivery": 3,
            "build": {"id": "b_1", "status": "failed"},
        }

    def test_payload_bytes_are_stable_across_attempts(self) -> None:
        assert payload(3, {"b": 1, "a": 2}) == payload(3, {"a": 2, "b": 1})

    def test_secrets_are_random(self) -> None:
        assert new_secret() != new_secret()
        assert len(new_secret()) >= 40


REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.5.4",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.1.1",
    "100.64.0.1",  # CGNAT
    "100.100.100.200",  # Alibaba metadata, inside CGNAT
    "192.0.0.192",  # Oracle metadata
    "198.18.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:db8::1",  # documentation
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1"]


class TestDenyList:
    @pytest.mark.parametrize("address", REFUSED)
    def test_internal_addresses_are_refused(self, address: str) -> None:
        assert refused_reason(ipaddress.ip_address(address)) is not None

    @pytest.mark.parametrize("address", ALLOWED)
    def test_public_addresses_are_allowed(self, address: str) -> None:
        assert refused_reason(ipaddress.ip_address(address)) is None

    @pytest.mark.parametrize("address", REFUSED)
    def test_literal_hosts_are_refused_before_any_lookup(self, address: str) -> None:
        host = f"[{address}]" if ":" in address else address
        with pytest.raises(WebhookRefused):
            parse_target(f"https://{host}/hook", allow_private=False)

    @pytest.mark.parametrize(
        "host",
        [
            "127.1",
            "2130706433",
            "0x7f000001",
            "017700000001",
            "localhost",
            "LOCALHOST.",
            "a.localhost",
            "metadata.google.internal",
        ],
    )
    def test_other_spellings_of_internal_hosts(self, host: str) -> None:
        with pytest.raises(WebhookRefused):
            parse_target(f"http://{host}/hook", allow_private=False)

    def test_the_machines_own_name_resolving_to_loopback_is_refused(self) -> None:
        # A name on no list, refused because of what it resolves to (here: 127.0.0.1 or similar).
        host = socket.gethostname()
        try:
            answers = system_resolver(host, 80)
        except OSError:
            pytest.skip(f"{host} does not resolve here")
        assert all(refused_reason(ipaddress.ip_address(a)) for a in answers)
        with pytest.raises(WebhookRefused, match="resolves to"):
            resolve_target(f"http://{host}:8080/hook", allow_private=False)

    def test_a_name_rebound_to_loopback_is_refused_at_delivery(self) -> None:
        # The answer a rebinding name gives at delivery time: the system resolver's for localhost.
        def rebound(host: str, port: int) -> list[str]:
            return system_resolver("localhost", port)

        with pytest.raises(WebhookRefused, match="loopback"):
            resolve_target("https://hooks.example.com/x", allow_private=False, resolver=rebound)

    def test_one_internal_answer_refuses_the_name(self) -> None:
        def resolver(host: str, port: int) -> list[str]:
            return ["93.184.216.34", "10.0.0.7"]

        with pytest.raises(WebhookRefused, match="private"):
            resolve_target("https://hooks.example.com/x", allow_private=False, resolver=resolver)

    def test_checked_addresses_are_the_ones_returned(self) -> None:
        def resolver(host: str, port: int) -> list[str]:
            assert (host, port) == ("hooks.example.com", 8443)
            return ["93.184.216.34", "2606:2800:220:1::1"]

        target, addresses = resolve_target(
            "https://hooks.example.com:8443/in?x=1", allow_private=False, resolver=resolver
        )
        assert addresses == ["93.184.216.34", "2606:2800:220:1::1"]
        assert target.url_for(addresses[1]) == "https://[2606:2800:220:1::1]:8443/in?x=1"
        assert target.host_header == "hooks.example.com:8443"

    def test_unresolvable_host_is_a_retryable_refusal(self) -> None:
        with pytest.raises(UnresolvableHost):
            resolve_target("https://nowhere.invalid/x", allow_private=False)

    def test_the_setting_allows_private_addresses(self) -> None:
        target, addresses = resolve_target("http://127.0.0.1:9/x", allow_private=True)
        assert addresses == ["127.0.0.1"]
        assert target.host_header == "127.0.0.1:9"


class TestUrlForm:
    @pytest.mark.parametrize(
        "url",
        [
            "ftp://example.com/x",
            "file:///etc/passwd",
            "https://user:pw@example.com/x",
            "https:///x",
            "https://example.com/x y",
            "https://example.com:99999/x",
            "gopher://example.com/",
        ],
    )
    def test_refused(self, url: str) -> None:
        with pytest.raises(WebhookRefused):
            parse_target(url, allow_private=True)

    def test_default_ports_and_path(self) -> None:
        target = parse_target("https://Example.COM", allow_private=False)
        assert (target.host, target.port, target.path) == ("example.com", 443, "/")
        assert target.host_header == "example.com"
        assert parse_target("http://example.com/a", allow_private=False).port == 80


class TestStandardWebhooks:
    """The Standard Webhooks headers, checked by the specification's reference library."""

    def test_the_library_verifies_a_delivery(self) -> None:
        secret = new_secret()
        body = payload(9, {"id": "b_1", "status": "succeeded"})
        sent = headers(secret, 9, body)
        assert sent["webhook-id"] == "msg_9"
        assert Webhook(secret).verify(body, sent) == json.loads(body)

    def test_every_active_secret_signs_and_each_verifies(self) -> None:
        current, previous = new_secret(), new_secret()
        body = payload(2, {"id": "b_2"})
        sent = headers([current, previous], 2, body)
        assert len(sent["webhook-signature"].split(" ")) == 2
        for secret in (current, previous):
            Webhook(secret).verify(body, sent)
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(body, sent)
        # The deprecated header is made with the current secret only.
        assert verify(current, body, sent[SIGNATURE_HEADER])

    def test_a_replayed_delivery_is_refused_by_its_timestamp(self) -> None:
        secret = new_secret()
        body = payload(3, {"id": "b_3"})
        old = headers(secret, 3, body, timestamp=int(time.time()) - 3600)
        with pytest.raises(WebhookVerificationError, match="too old"):
            Webhook(secret).verify(body, old)

    def test_changing_the_id_or_timestamp_breaks_the_signature(self) -> None:
        secret = new_secret()
        body = payload(4, {"id": "b_4"})
        sent = headers(secret, 4, body, timestamp=1_900_000_000)
        signature = sent["webhook-signature"]
        assert webhook_signing.verify(secret, "msg_4", 1_900_000_000, body, signature)
        assert not webhook_signing.verify(secret, "msg_5", 1_900_000_000, body, signature)
        assert not webhook_signing.verify(secret, "msg_4", 1_900_000_001, body, signature)

    def test_new_secrets_are_whsec_base64_of_32_bytes(self) -> None:
        secret = new_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        assert webhook_signing.check_secret(secret) == secret

    @pytest.mark.parametrize(
        "secret",
        [
            "x" * 40,
            "whsec_" + "-_" * 20,
            "whsec_" + base64.b64encode(b"short").decode(),
            "whsec_" + base64.b64encode(bytes(65)).decode(),
        ],
    )
    def test_a_user_secret_must_be_the_standard_format(self, secret: str) -> None:
        with pytest.raises(webhook_signing.SecretInvalid, match="whsec_"):
            webhook_signing.check_secret(secret)

    def test_a_secret_of_the_older_format_still_signs_with_its_text(self) -> None:
        legacy = "whsec_" + "ab-_" * 11
        body = payload(5, {"id": "b_5"})
        sent = headers(legacy, 5, body, timestamp=1_900_000_000)
        assert webhook_signing.verify(
            legacy, "msg_5", 1_900_000_000, body, sent["webhook-signature"]
        )
        assert webhook_signing.signing_key(legacy) == legacy.encode()


class TestRotation:
    def test_a_replaced_secret_stays_active_for_its_grace_period(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        previous = webhook_signing.retire("old", None, now, timedelta(hours=1))
        assert webhook_signing.active_secrets("new", previous, now) == ["new", "old"]
        later = now + timedelta(hours=1)
        assert webhook_signing.active_secrets("new", previous, later) == ["new"]

    def test_zero_grace_drops_the_old_secret_and_expired_entries_go(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        first = webhook_signing.retire("a", None, now, timedelta(minutes=5))
        second = webhook_signing.retire("b", first, now + timedelta(minutes=10), timedelta(0))
        assert second == []

    def test_at_most_a_few_previous_secrets_are_kept(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        previous: list[dict[str, Any]] = []
        for number in range(10):
            previous = webhook_signing.retire(f"s{number}", previous, now, timedelta(days=1))
        assert len(previous) == webhook_signing.MAX_PREVIOUS_SECRETS
        assert previous[0]["secret"] == "s9"

"""Webhooks: the signed message a callback URL receives when a build ends, and where it may go.

Message: a JSON body `{"event": "build.finished", "delivery": <id>, "build": <the build resource>}`
signed per the Standard Webhooks specification (`webhook-id`, `webhook-timestamp`,
`webhook-signature`; see core.webhooks.signing), with `X-Imagebuilder-Event` and
`X-Imagebuilder-Delivery`, and for one more release the older `X-Imagebuilder-Signature:
sha256=<hex>`, the HMAC-SHA256 of the exact body bytes keyed with the owner's current secret.
Retries resend the same body and `webhook-id`, with a fresh timestamp and signature.

Destinations: http(s) URLs without credentials in them. Every address the host resolves to is
checked when the message is sent, and the connection goes to that checked address (the URL's host
stays the Host header and the TLS server name): a DNS answer that changes between the check and the
connection (rebinding) cannot reach inside. Refused unless `webhook_allow_private_addresses`:
loopback, private (RFC 1918), link-local (cloud metadata 169.254.169.254), shared CGNAT space
(100.64.0.0/10), IETF protocol, benchmark and reserved ranges, multicast, unspecified, and their
IPv6 counterparts: ULA (fc00::/7, metadata fd00:ec2::254), link-local, IPv4-mapped and -compatible,
and NAT64 or 6to4 addresses that embed a refused IPv4 address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.errors import WebhookRefused
from core.webhooks import signing as webhook_signing
from core.webhooks.signing import new_secret as new_secret  # where callers have imported it

EVENT = "build.finished"
# Deprecated: kept for one release next to the Standard Webhooks headers.
SIGNATURE_HEADER = "X-Imagebuilder-Signature"
EVENT_HEADER = "X-Imagebuilder-Event"
DELIVERY_HEADER = "X-Imagebuilder-Delivery"
MAX_URL_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
_REFUSED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_REFUSED_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "instance-data"})
_LEGACY_IPV4 = re.compile(r"^[0-9a-fA-Fx.]+$")


class UnresolvableHost(WebhookRefused):
    """The host name did not resolve: possibly for a moment, so a delivery retries."""


def sign(secret: str, body: bytes) -> str:
    """The deprecated X-Imagebuilder-Signature value for `body`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header)


def payload(delivery_id: int, build: dict[str, Any]) -> bytes:
    """The body sent for one delivery: the same bytes on every attempt."""
    body = {"event": EVENT, "delivery": delivery_id, "build": build}
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")


def headers(
    secrets: str | Sequence[str], delivery_id: int, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of one attempt, signed with every active secret (the current one first)."""
    active = [secrets] if isinstance(secrets, str) else list(secrets)
    message = webhook_signing.message_id(delivery_id)
    when = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": "imagebuilder-webhooks/1",
        webhook_signing.ID_HEADER: message,
        webhook_signing.TIMESTAMP_HEADER: str(when),
        webhook_signing.SIGNATURE_HEADER: webhook_signing.signature(active, message, when, body),
        EVENT_HEADER: EVENT,
        DELIVERY_HEADER: str(delivery_id),
        SIGNATURE_HEADER: sign(active[0], body),
    }


# --- destinations -------------------------------------------------------------------------------


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address.packed[:12] == bytes(12):
        return ipaddress.IPv4Address(address.packed[12:])
    return None


def refused_reason(address: IPAddress) -> str | None:
    """Why a webhook may not be sent to `address`; None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (link-local) IPv6 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := refused_reason(embedded)) is not None:
            return f"{reason} (embedded in {address})"
        if address in _LOCAL_NAT64:
            return "a local-use NAT64 address"
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    if isinstance(address, ipaddress.IPv4Address) and any(address in n for n in _REFUSED_V4):
        return "an internal or special-purpose address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL, split for a pinned connection."""

    url: str
    scheme: str
    host: str  # as written (no brackets), lower case
    port: int
    path: str  # path and query

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: str) -> str:
        """The URL with the host replaced by one of its checked addresses."""
        literal = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        # "127.1", "2130706433", "0x7f000001": forms inet_aton (and so the resolver) accepts.
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def parse_target(url: str, *, allow_private: bool) -> Target:
    """Check a URL's form and, without DNS, its host; raises WebhookRefused."""
    if len(url) > MAX_URL_LENGTH or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise WebhookRefused("The webhook URL must be one line without spaces, under 2000 chars.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"The webhook URL is not valid: {exc}.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("The webhook URL must be http:// or https:// with a host name.")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("The webhook URL must not carry credentials; it is signed instead.")
    host = parts.hostname.lower().rstrip(".")
    target = Target(
        url=url,
        scheme=parts.scheme,
        host=host,
        port=port or (443 if parts.scheme == "https" else 80),
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
    )
    if allow_private:
        return target
    if host in _REFUSED_NAMES or host.endswith(".localhost"):
        raise WebhookRefused(f"The webhook host {host} is an internal name.")
    literal = _literal_address(host)
    if literal is not None and (reason := refused_reason(literal)) is not None:
        raise WebhookRefused(f"The webhook host {host} is {reason}.")
    return target


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_target(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> tuple[Target, list[str]]:
    """The checked target and the addresses to connect to; raises WebhookRefused when the URL or
    any address its host resolves to is refused (one internal answer refuses the whole name)."""
    target = parse_target(url, allow_private=allow_private)
    try:
        addresses = list(resolver(target.host, target.port))
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHost(f"The webhook host {target.host} does not resolve: {exc}.") from exc
    if not addresses:
        raise UnresolvableHost(f"The webhook host {target.host} does not resolve.")
    if not allow_private:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if (reason := refused_reason(address)) is not None:
                raise WebhookRefused(f"The webhook host {target.host} resolves to {reason}.")
    return target, addresses

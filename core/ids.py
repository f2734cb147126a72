"""Build identifiers: "b_" + a ULID (48-bit millisecond time, 80 random bits, Crockford base32).

Sortable by creation time, so the id doubles as the pagination cursor; unguessable, never a counter.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_ulid() -> str:
    millis = time.time_ns() // 1_000_000
    return _base32(millis, 10) + _base32(secrets.randbits(80), 16)


def new_build_id() -> str:
    return "b_" + new_ulid()


def new_token_id() -> str:
    return "t_" + new_ulid()

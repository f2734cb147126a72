"""Encryption at rest of the secrets the service must read back (package index credentials).

AES-256-GCM (`cryptography`), a random 96-bit nonce per value, and the row's identity as
associated data: a ciphertext copied into another row does not decrypt. The key is derived with
HKDF-SHA256 from `IMAGEBUILDER_SECRET_KEY`, or, in development when that is unset, from a random
key file created once in the data folder (mode 0600). API processes and workers must share it.

Stored form: `v1:` + urlsafe base64 of nonce || ciphertext || tag.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import ImageBuilderError
from core.settings import Settings

KEY_FILE = "secret.key"
_VERSION = "v1:"
_NONCE_BYTES = 12
_INFO = b"imagebuilder/secret-box/v1"


class SecretUnreadable(ImageBuilderError):
    """A stored secret that does not decrypt: the key changed, or the row was tampered with."""

    status = 500
    code = "secret_unreadable"
    title = "A stored secret cannot be decrypted"


class SecretBox:
    def __init__(self, key_material: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key_material)
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str, *, context: str) -> str:
        if not stored.startswith(_VERSION):
            raise SecretUnreadable("a stored secret has an unknown format")
        try:
            raw = base64.urlsafe_b64decode(stored[len(_VERSION) :])
            nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, sealed, context.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable(
                "a stored secret does not decrypt with IMAGEBUILDER_SECRET_KEY (was the key "
                "changed?); register the package index again"
            ) from exc


def secret_box(settings: Settings) -> SecretBox:
    """The box for this deployment's key (the setting, else the data folder's key file)."""
    if settings.secret_key is not None:
        return SecretBox(settings.secret_key.get_secret_value().encode())
    return SecretBox(_key_file(settings.data_dir / KEY_FILE))


def _key_file(path: Path) -> bytes:
    """Read the key file, creating it first if absent. Written to a private temporary file and
    linked into place, so a concurrent first start never reads a half-written key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
            # Another process may have made it first: then theirs is used.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text().strip().encode()

"""Typed factories for test data."""

from __future__ import annotations

import secrets

from sqlalchemy import Engine

from core.access.caller import Caller
from core.builds.options import BuildOptions
from core.builds.service import create_build
from core.db import session_scope
from core.settings import Settings
from core.sources.intake import StoredSource

# The image namespace of the default settings, where the factories' builds tag their images.
TEST_NAMESPACE: str = Settings.model_fields["image_namespace"].default


def stored_source(**overrides: object) -> StoredSource:
    values: dict[str, object] = {
        "filename": "project.zip",
        "size_bytes": 1234,
        "sha256": secrets.token_hex(32),
        "files": 3,
    }
    values.update(overrides)
    return StoredSource(**values)  # type: ignore[arg-type]


def queued_build(
    engine: Engine,
    *,
    owner: str = "alice",
    source: StoredSource | None = None,
    options: BuildOptions | None = None,
) -> str:
    """Insert a queued build and return its id."""
    with session_scope(engine) as session:
        build = create_build(
            session,
            caller=Caller(owner),
            source=source or stored_source(),
            options=options or BuildOptions(),
            namespace=TEST_NAMESPACE,
        )
        return build.id

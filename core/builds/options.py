"""Build options as a user gives them (form fields or query parameters), validated once."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import WebhookRefused
from core.settings import SUPPORTED_PYTHON_VERSIONS
from core.webhooks.message import parse_target

# The Docker reference grammar (distribution/reference), without digests: a tag names a new image.
# Tags spelled out in ASCII: Go's \w is ASCII-only, Python's is not.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_REFERENCE = re.compile(rf"^(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?$")
_BUILD_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_valid_reference(tag: str) -> bool:
    return len(tag) <= 255 and _REFERENCE.fullmatch(tag) is not None


def _relative_path(value: str, what: str) -> str:
    cleaned = value.strip().strip("/")
    path = PurePosixPath(cleaned)
    if (
        not cleaned
        or "\\" in value
        or value.startswith("/")
        or ".." in path.parts
        or _CONTROL.search(value)
        or len(value) > 255
    ):
        raise ValueError(f"{what} must be a relative path inside the archive, without '..'")
    return path.as_posix()


class BuildOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str | None = Field(default=None, description="Docker reference for the image.")
    python_version: str | None = Field(
        default=None, description="3.8 to 3.14; default: detected from the project."
    )
    run_tests: bool = True
    test_command: str | None = Field(default=None, max_length=2000)
    dockerfile: str | None = Field(default=None, description="Path of a Dockerfile in the archive.")
    context_dir: str | None = Field(
        default=None, description="Sub-folder that is the project root."
    )
    build_args: dict[str, str] = Field(default_factory=dict, max_length=64)
    callback_url: str | None = Field(
        default=None,
        description="Receives the build resource, signed, when the build ends (http or https).",
    )
    no_cache: bool = Field(
        default=False,
        description="Build afresh: no earlier result reused, no layer cache.",
    )

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_reference(value):
            raise ValueError(
                "tag must be a Docker reference such as 'myapp:1.2' or "
                "'registry.example.com/team/myapp:latest' (lowercase name, no digest)"
            )
        return value

    @field_validator("python_version")
    @classmethod
    def _python_version(cls, value: str | None) -> str | None:
        if value is not None and value not in SUPPORTED_PYTHON_VERSIONS:
            raise ValueError(
                f"python_version must be one of {', '.join(SUPPORTED_PYTHON_VERSIONS)}"
            )
        return value

    @field_validator("test_command")
    @classmethod
    def _test_command(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip() or _CONTROL.search(value):
            raise ValueError("test_command must be one non-empty line")
        return value.strip()

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile(cls, value: str | None) -> str | None:
        return None if value is None else _relative_path(value, "dockerfile")

    @field_validator("context_dir")
    @classmethod
    def _context_dir(cls, value: str | None) -> str | None:
        return None if value is None else _relative_path(value, "context_dir")

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # The form only: whether its address may be reached is decided at delivery time.
        try:
            parse_target(value, allow_private=True)
        except WebhookRefused as exc:
            raise ValueError(exc.detail) from exc
        return value

    @field_validator("build_args")
    @classmethod
    def _build_args(cls, value: dict[str, str]) -> dict[str, str]:
        for name, arg in value.items():
            if not _BUILD_ARG_NAME.fullmatch(name):
                raise ValueError(f"build_args name {name!r} is not a valid build argument name")
            if name.upper().startswith("BUILDKIT_"):
                # They steer BuildKit itself (a remote frontend, context handling, caches):
                # the service's decisions, not a build's.
                raise ValueError(f"build_args name {name!r}: BUILDKIT_* arguments are refused")
            if "\x00" in arg or len(arg) > 4096:
                raise ValueError(f"build_args value of {name!r} must be text under 4096 characters")
        return value

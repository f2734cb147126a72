"""All configuration: read once from the environment (prefix IMAGEBUILDER_), validated at start."""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAMESPACE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_PLACEHOLDERS = frozenset({"changeme", "change-me", "secret", "password", "admin", "token"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGEBUILDER_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    # One JSON object per log line (for log shippers); "text" for people at a terminal.
    log_format: Literal["json", "text"] = "json"
    # OpenTelemetry traces from upload to pipeline phases (core.observability.tracing), exported
    # over OTLP.
    tracing_enabled: bool = False
    tracing_service: str = "imagebuilder"
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 8000

    # Accepted as an admin token from start-up (stored hashed, created if absent).
    bootstrap_token: SecretStr | None = None
    # Encrypts secrets stored in the database (package index credentials; core.access.secret_box).
    # Required in production; in development, unset means a random key file in data_dir.
    secret_key: SecretStr | None = None

    # Empty means SQLite in data_dir, the embedded default.
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Uploads and archives (checked while streaming and while extracting).
    max_upload_bytes: int = 50 * MiB
    max_uncompressed_bytes: int = 256 * MiB
    # A project's own Dockerfile larger than this is refused before it is parsed.
    max_dockerfile_bytes: int = 256 * 1024
    max_archive_entries: int = 10_000
    max_compression_ratio: float = 100.0
    # The ratio limit only applies to entries larger than this: tiny files compress absurdly well.
    ratio_check_threshold_bytes: int = 1 * MiB
    max_path_length: int = 1024
    max_path_depth: int = 64

    # Base images. "{version}" is replaced by the Python version ("3.11"). A real deployment uses
    # the official images; `scripts/base-images.sh` builds local stand-ins from Debian packages.
    builder_image_template: str = "python:{version}"
    runtime_image_template: str = "python:{version}-slim"
    default_python_version: str = "3.11"
    # Pull a base image the daemon does not have. Off where no registry can be reached.
    pull_base_images: bool = True
    # A PEM bundle that builds trust for outbound HTTPS (package indexes behind a TLS-inspecting
    # proxy). Passed to the build as a BuildKit secret: never stored in an image layer.
    ca_bundle: Path | None = None
    docker_cli: str = "docker"
    # Whether the API process may talk to the build daemon (image export, readiness, the plan's
    # available versions when bases are not pulled). Off where only workers reach the daemon
    # (the compose file): export then points at the pushed image in the registry.
    api_docker_access: bool = True
    # Every image a build creates is tagged `<image_namespace>/<owner>/<tag>` on the build daemon:
    # owners never name each other's images, the base images or anything else the service uses.
    image_namespace: str = "imagebuilder/owners"

    # Build and test containment.
    build_timeout_seconds: int = 1800
    test_timeout_seconds: int = 600
    test_memory_bytes: int = 1024 * MiB
    test_cpus: float = 1.0
    test_pids_limit: int = 256
    test_tmpfs_bytes: int = 256 * MiB
    # Without this, a project with no tests succeeds with "tests": null.
    require_tests: bool = False
    max_log_bytes: int = 10 * MiB

    # Per owner: submissions accepted per minute (429 past it), and builds running at once (more
    # wait in the queue, served fairly between owners).
    submissions_per_minute: int = 60
    max_running_per_owner: int = 2

    # API capacity, sized together. Each API process (`api_workers` of them) runs at most
    # `api_threads` blocking handlers at once; each of those holds at most one database connection,
    # and only while it queries, so a pool at least that large means no handler ever waits for
    # one. A checkout that still waits gives up after `database_pool_timeout_seconds` (503).
    # With PostgreSQL: api_workers * (pool size + overflow) + workers must fit max_connections.
    api_workers: int = 1
    api_threads: int = 24
    database_pool_size: int = 24
    database_max_overflow: int = 8
    database_pool_timeout_seconds: float = 10.0
    # Request bodies other than the upload (JSON: tokens, webhooks, ...) are refused (413) past
    # this, before a byte is read when Content-Length says so, while reading otherwise.
    max_request_body_bytes: int = 1 * MiB
    # Per owner and API process: live-log followers and image exports at once (429 past it).
    max_followers_per_owner: int = 100
    max_exports_per_owner: int = 2

    # Refuse new uploads (503) when the data folder's disk has less than this free.
    min_free_disk_bytes: int = 1024 * MiB
    # Terminal builds older than this lose their log, stored source and image (the row stays).
    retention_days: float = 30.0
    # The name this worker's build host is shown by (`host` of a build); default: the name its
    # Docker daemon reports.
    build_host: str = ""
    # Where accepted sources are kept (core/sources/store.py): "folder" in the data folder,
    # "database" for build hosts that share no disk with the API.
    source_store: Literal["folder", "database"] = "folder"
    # A submission whose inputs equal an earlier succeeded build's takes that result instead of
    # building (core/builds/reuse.py); off: every submission builds (the layer cache still applies).
    reuse_results: bool = True

    # Reliability: a running build whose worker stops beating is handed back or failed.
    heartbeat_seconds: float = 5.0
    stale_after_seconds: float = 120.0
    requeue_after_seconds: float = 60.0
    max_attempts: int = 2
    sweep_interval_seconds: float = 30.0

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("builder_image_template", "runtime_image_template")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(version="3.11")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{value!r} must be an image name with at most a {{version}} field"
            ) from exc
        return value

    @field_validator("image_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        value = value.strip().strip("/")
        if not _NAMESPACE.fullmatch(value):
            raise ValueError(
                "image_namespace is a repository path such as 'imagebuilder/owners' "
                "(lower-case components separated by '/', no registry host)"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        for base in (self.builder_image("3.11"), self.runtime_image("3.11")):
            for prefix in filter(None, (self.image_namespace, self.registry_url)):
                if base.startswith(prefix + "/"):
                    raise ValueError(
                        f"the base image {base} lies where builds write their images "
                        f"({prefix}/...): keep base images outside IMAGEBUILDER_IMAGE_NAMESPACE "
                        "and IMAGEBUILDER_REGISTRY_URL"
                    )
        token = self.bootstrap_token.get_secret_value() if self.bootstrap_token else None
        if token is not None and (len(token) < 24 or token.lower() in _PLACEHOLDERS):
            raise ValueError(
                "IMAGEBUILDER_BOOTSTRAP_TOKEN must be a random value of 24+ characters"
            )
        if self.environment == "production" and self.database_url == "":
            raise ValueError("production needs IMAGEBUILDER_DATABASE_URL (PostgreSQL)")
        key = self.secret_key.get_secret_value() if self.secret_key else None
        if key is not None and (len(key) < 32 or key.lower() in _PLACEHOLDERS):
            raise ValueError("IMAGEBUILDER_SECRET_KEY must be a random value of 32+ characters")
        if self.environment == "production" and key is None:
            raise ValueError(
                "production needs IMAGEBUILDER_SECRET_KEY (32+ random characters, shared by the "
                "API and the workers): it encrypts stored package index credentials"
            )
        if self.database_pool_size + self.database_max_overflow < self.api_threads:
            raise ValueError(
                "IMAGEBUILDER_DATABASE_POOL_SIZE + IMAGEBUILDER_DATABASE_MAX_OVERFLOW must be at "
                "least IMAGEBUILDER_API_THREADS: every handler thread may need a connection"
            )
        if min(self.api_workers, self.api_threads, self.database_pool_size) < 1:
            raise ValueError("api_workers, api_threads and database_pool_size must be positive")
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise ValueError(f"IMAGEBUILDER_CA_BUNDLE={self.ca_bundle} is not a file")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'imagebuilder.db'}"

    @property
    def sources_dir(self) -> Path:
        return self.data_dir / "sources"

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir / "workspaces"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def instance_id(self) -> str:
        """Names this deployment (its database) on a Docker daemon other services may share."""
        return hashlib.sha256(self.sqlalchemy_url.encode()).hexdigest()[:16]

    def builder_image(self, python_version: str) -> str:
        return self.builder_image_template.format(version=python_version)

    def runtime_image(self, python_version: str) -> str:
        return self.runtime_image_template.format(version=python_version)

    # --- supply chain (issue 7) ----------------------------------------------------------------
    # Findings at or above this severity fail a build `vulnerabilities_found`; "none" only reports.
    # With a policy set, a build also fails (`error`) while no advisory database was imported.
    vulnerability_policy: Literal["none", "low", "medium", "high", "critical"] = "none"
    # Base images a project's own Dockerfile may use (FROM, COPY --from, RUN --mount=from=), as
    # patterns: `*` and `?` stay within one path segment, `**` crosses them
    # ("python:3.*-slim", "docker.io/library/python:**", "registry.example.com/base/**").
    # Comma-separated in the environment. Empty: no restriction.
    allowed_base_images: Annotated[list[str], NoDecode] = []
    # Push every succeeded image to this registry ("host[:port][/namespace]", no scheme); empty:
    # no push. The credentials are sent to the daemon for the push only, never logged or stored.
    registry_url: str = ""
    registry_username: str = ""
    registry_password: SecretStr | None = None
    # Webhooks: internal destinations (loopback, private, link-local, CGNAT, ULA, metadata) are
    # refused unless this is set (tests, or a receiver on the operator's own network).
    webhook_allow_private_addresses: bool = False
    webhook_timeout_seconds: float = 10.0
    # The whole of one delivery (connect, send, the receiver's answer): a receiver that trickles
    # its answer byte by byte is cut here, whatever the per-read timeout.
    webhook_deadline_seconds: float = 30.0
    webhook_max_attempts: int = 6
    # Delay before the first retry; each later retry waits twice as long (at most an hour).
    webhook_backoff_seconds: float = 30.0
    # Private package indexes (core.access.package_indexes): plain-http index URLs send their
    # credentials in clear, so they are refused unless this is set (a test, a trusted network).
    index_allow_http: bool = False

    @field_validator("allowed_base_images", mode="before")
    @classmethod
    def _patterns(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("registry_url")
    @classmethod
    def _registry(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if "://" in value or any(char.isspace() for char in value):
            raise ValueError("registry_url is host[:port][/namespace], without a scheme")
        return value


@functools.cache
def get_settings() -> Settings:
    return Settings()


SUPPORTED_PYTHON_VERSIONS = tuple(f"3.{minor}" for minor in range(8, 15))

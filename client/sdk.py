"""The typed Python SDK: every route a user or an admin has, returning `client.models`.

    from client.sdk import Client
    with Client("https://imagebuilder.example", token) as ib:
        build = ib.submit_folder("myproject", tag="myapp:1.0")
        for line in ib.follow(build.id):
            print(line.text)
        ib.build(build.id).status

Errors are `client.api.ClientError` (`ApiError` with the problem's status and code,
`ConnectionFailed`). The command line (`client.cli`) is built on the same calls.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from client import models
from client.api import Api, ApiError, BuildRequest, Json
from client.follow import LogFollower, LogLine
from client.packing import PackOptions, pack

M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], value: object) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(
            200,
            "unexpected_response",
            f"The server's answer is not a {model.__name__}: {where}: {first['msg']}.",
        ) from exc


class Client:
    """The imagebuilder API at `base_url`, authenticated with `token`."""

    def __init__(
        self, base_url: str, token: str | None, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.api = Api(base_url, token, transport=transport)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- builds ---------------------------------------------------------------------------

    def submit(
        self, archive: BinaryIO, filename: str = "project.zip", **options: Any
    ) -> models.Build:
        """Upload a zip and queue a build; `options` are BuildRequest's fields (tag, ...)."""
        return _parse(models.Build, self.api.submit(archive, filename, BuildRequest(**options)))

    def submit_folder(self, folder: str | Path, **options: Any) -> models.Build:
        """Zip a folder (honouring .dockerignore/.gitignore) and submit it."""
        with tempfile.TemporaryFile() as archive:
            pack(Path(folder), archive, PackOptions())
            return self.submit(
                archive, f"{Path(folder).resolve().name or 'project'}.zip", **options
            )

    def plan(self, archive: BinaryIO, filename: str = "project.zip", **options: Any) -> models.Plan:
        """What a build of this zip would do, without building."""
        return _parse(models.Plan, self.api.plan(archive, filename, BuildRequest(**options)))

    def build(self, build_id: str) -> models.Build:
        return _parse(models.Build, self.api.get_build(build_id))

    def builds(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> models.BuildPage:
        page = self.api.list_builds(status=status, limit=limit, cursor=cursor)
        return _parse(models.BuildPage, page)

    def cancel(self, build_id: str) -> models.Build:
        return _parse(models.Build, self.api.cancel(build_id))

    def rebuild(self, build_id: str) -> models.Build:
        return _parse(models.Build, self.api.rebuild(build_id))

    def dockerfile(self, build_id: str) -> str:
        return self.api.dockerfile(build_id)

    # --- logs -----------------------------------------------------------------------------

    def logs(self, build_id: str, *, after: int = 0) -> Iterator[str]:
        """The log as stored now."""
        return self.api.log_lines(build_id, after=after)

    def follow(self, build_id: str) -> Iterator[LogLine]:
        """Every log line until the build ends (resuming over dropped connections)."""
        return iter(LogFollower(self.api, build_id))

    # --- supply chain ----------------------------------------------------------------------

    def sbom(self, build_id: str) -> Json:
        """The CycloneDX JSON document, as sent."""
        return self.api.sbom(build_id)

    def provenance(self, build_id: str) -> Json:
        """The in-toto statement, as sent."""
        return self.api.provenance(build_id)

    def download_image(self, build_id: str, path: str | Path) -> int:
        """Save the image (`docker load -i PATH` loads it); returns its size in bytes."""
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        with partial.open("wb") as out:
            size = self.api.download_image(build_id, out)
        partial.replace(target)
        return size

    # --- webhooks ---------------------------------------------------------------------------

    def webhook(self) -> models.Webhook:
        return _parse(models.Webhook, self.api.get_webhook())

    def set_webhook(
        self,
        url: str | None,
        *,
        secret: str | None = None,
        rotate_secret: bool = False,
        previous_secret_seconds: int | None = None,
    ) -> models.Webhook:
        answer = self.api.set_webhook(
            url,
            secret=secret,
            rotate_secret=rotate_secret,
            previous_secret_seconds=previous_secret_seconds,
        )
        return _parse(models.Webhook, answer)

    # --- package indexes ---------------------------------------------------------------------

    def put_index(
        self,
        name: str,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        default: bool = False,
        owner: str | None = None,
    ) -> models.PackageIndex:
        """Register a private index for the owner's builds (admins: `owner`, or `_global`)."""
        answer = self.api.put_index(
            name, url, username=username, password=password, default=default, owner=owner
        )
        return _parse(models.PackageIndex, answer)

    def indexes(self, *, owner: str | None = None) -> list[models.PackageIndex]:
        return [_parse(models.PackageIndex, item) for item in self.api.list_indexes(owner=owner)]

    def delete_index(self, name: str, *, owner: str | None = None) -> None:
        self.api.delete_index(name, owner=owner)

    # --- tokens and admin ---------------------------------------------------------------------

    def create_token(self, owner: str, *, admin: bool = False) -> models.NewToken:
        return _parse(models.NewToken, self.api.create_token(owner, admin=admin))

    def tokens(self) -> list[models.Token]:
        return [_parse(models.Token, item) for item in self.api.list_tokens()]

    def revoke_token(self, token_id: str) -> None:
        self.api.revoke_token(token_id)

    def builds_on_base(self, base_digest: str, *, limit: int | None = None) -> list[models.Build]:
        page = self.api.builds_on_base(base_digest, limit=limit)
        return [_parse(models.Build, item) for item in page["items"]]

    def rebuild_on_base(self, base_digest: str, *, limit: int | None = None) -> models.BulkRebuild:
        return _parse(models.BulkRebuild, self.api.rebuild_on_base(base_digest, limit=limit))

"""End to end: the typed SDK (client.sdk) over every user and admin route, against the running
service with a real worker."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from client import models
from client.api import ApiError
from client.sdk import Client
from tests.conftest import PROJECTS, zip_project
from tests.e2e.conftest import Service

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]


def test_every_route_through_the_sdk(service: Service, tmp_path: Path) -> None:
    with Client(service.url, service.token) as ib:
        plan = ib.plan(io.BytesIO(zip_project("passing")), "passing.zip")
        assert isinstance(plan, models.Plan)
        assert "FROM" in plan.dockerfile

        build = ib.submit_folder(PROJECTS / "passing", tag="sdk/passing:1")
        assert build.status == "queued"
        lines = [line.text for line in ib.follow(build.id)]
        build = ib.build(build.id)
        assert build.status == "succeeded", (build, service.logs())
        assert lines
        assert list(ib.logs(build.id))[: len(lines)] == lines
        assert "FROM" in ib.dockerfile(build.id)
        assert build.id in [item.id for item in ib.builds(limit=10).items]

        sbom = ib.sbom(build.id)
        assert sbom["bomFormat"] == "CycloneDX"
        assert ib.provenance(build.id)["predicateType"].startswith("https://slsa.dev/provenance")
        size = ib.download_image(build.id, tmp_path / "image.tar")
        assert size == (tmp_path / "image.tar").stat().st_size
        with tarfile.open(tmp_path / "image.tar") as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"]

        first = ib.set_webhook("https://hooks.example.com/imagebuilder")
        rotated = ib.set_webhook(first.url, rotate_secret=True, previous_secret_seconds=60)
        assert rotated.secret != first.secret
        assert len(rotated.previous_secrets_expire_at) == 1
        assert ib.set_webhook(None).url is None
        assert ib.webhook().secret == rotated.secret

        created = ib.create_token("sdk-owner")
        assert created.token.startswith("ib_")
        assert created.id in [token.id for token in ib.tokens()]
        with Client(service.url, created.token) as other:
            with pytest.raises(ApiError) as hidden:
                other.build(build.id)  # another owner's build does not exist for them
            assert hidden.value.code == "build_not_found"
        ib.revoke_token(created.id)

        assert build.base_image_digest is not None
        on_base = ib.builds_on_base(build.base_image_digest)
        assert build.id in [item.id for item in on_base]
        bulk = ib.rebuild_on_base(build.base_image_digest)
        assert [item.rebuild_of for item in bulk.queued] == [build.id]
        again = ib.rebuild(build.id)
        for queued in (bulk.queued[0].id, again.id):
            assert ib.cancel(queued).id == queued

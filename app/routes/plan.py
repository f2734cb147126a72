"""POST /api/v1/plan: what a build of this upload would do, without building it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from adapters.docker import DockerEngine
from adapters.docker.bases import available_python_versions
from app.deps import CurrentCaller, EngineDep, SettingsDep
from app.problems import problem_responses
from app.routes.builds import UPLOAD_BODY
from app.submission import admit, given, parse_options
from app.upload_body import read_upload
from core.builds.options import BuildOptions
from core.builds.preparation import Preparation, PreparationRefused, prepare
from core.errors import ImageBuilderError
from core.settings import SUPPORTED_PYTHON_VERSIONS, Settings
from core.sources.credentials import redact_project, warning_for
from core.sources.intake import new_upload_path
from core.status import Failure

router = APIRouter(prefix="/api/v1", tags=["builds"])


class PlanRefused(ImageBuilderError):
    """What would end a build in its preparing phase, with that build's failure code."""

    status = 400
    code = "project_invalid"
    title = "The project cannot be built as given"

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message, code=failure.code)


class PlanOut(BaseModel):
    plan: dict[str, Any]
    dockerfile: str
    generated: bool


def _available_versions(settings: Settings, docker_engine: DockerEngine | None) -> list[str]:
    """The Python versions a build could use: every supported one where bases are pulled (or
    where this API cannot see the build daemon), else those whose base images it holds."""
    if docker_engine is None:
        return list(SUPPORTED_PYTHON_VERSIONS)
    return available_python_versions(settings, docker_engine)


def _plan(archive: Path, options: BuildOptions, settings: Settings, owner: str) -> PlanOut:
    settings.workspaces_dir.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="plan-", dir=settings.workspaces_dir))
    # The build's own preparation, so that a plan passes exactly when a build would get past
    # preparing. Credentials in the project's files are taken out as the build does; the base
    # images are checked only where this API can see the build daemon.
    docker_engine = None
    try:
        if settings.api_docker_access and not settings.pull_base_images:
            docker_engine = DockerEngine(settings.docker_cli, timeout=10)
        context = Preparation(
            settings=settings,
            owner=owner,
            build_id="(plan)",
            available_versions=_available_versions(settings, docker_engine),
            take_credentials=lambda root: warning_for(redact_project(root)),
            image_present=docker_engine.image_exists if docker_engine is not None else None,
            say=lambda _line: None,
        )
        prepared = prepare(archive, workspace, options, context)
    except PreparationRefused as refused:
        raise PlanRefused(refused.failure) from refused
    finally:
        if docker_engine is not None:
            docker_engine.close()
        shutil.rmtree(workspace, ignore_errors=True)
    return PlanOut(
        plan=prepared.plan.to_dict(), dockerfile=prepared.dockerfile, generated=prepared.generated
    )


@router.post(
    "/plan",
    response_model=PlanOut,
    openapi_extra=UPLOAD_BODY,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
)
async def plan_upload(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    caller: CurrentCaller,
    python_version: str | None = None,
    test_command: str | None = None,
    dockerfile: str | None = None,
    context_dir: str | None = None,
) -> PlanOut:
    """Detect what a build of this upload would do (python version, dependencies, tests, start
    command, each with its reason) and the Dockerfile it would use; nothing is stored or built.
    Takes the same upload and options as POST /api/v1/builds."""
    # Counted against the owner's submission rate like an upload: it costs as much.
    await run_in_threadpool(admit, engine, settings, caller)
    query = given(
        python_version=python_version,
        test_command=test_command,
        dockerfile=dockerfile,
        context_dir=context_dir,
    )
    partial = new_upload_path(settings)
    upload = await read_upload(request, partial, settings.max_upload_bytes)
    try:
        options = parse_options(query | upload.fields)
        return await run_in_threadpool(_plan, upload.file.path, options, settings, caller.owner)
    finally:
        partial.unlink(missing_ok=True)

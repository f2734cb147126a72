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
from core.access.namespaces import cache_scope
from core.builds.options import BuildOptions
from core.detection.detect import DetectionError, detect
from core.dockerfile.render import BaseImages, render
from core.errors import ImageBuilderError
from core.settings import SUPPORTED_PYTHON_VERSIONS, Settings
from core.sources.archive import extract_archive
from core.sources.credentials import redact_line, redact_project, warning_for
from core.sources.intake import new_upload_path
from core.sources.workspace import ProjectRootMissing, project_root

router = APIRouter(prefix="/api/v1", tags=["builds"])


class ProjectInvalid(ImageBuilderError):
    status = 400
    code = "project_invalid"
    title = "The project cannot be built as given"


class PlanOut(BaseModel):
    plan: dict[str, Any]
    dockerfile: str
    generated: bool


def _available_versions(settings: Settings) -> list[str]:
    """The Python versions a build could use: every supported one where bases are pulled (or
    where this API cannot see the build daemon), else those whose base images it holds."""
    if settings.pull_base_images or not settings.api_docker_access:
        return list(SUPPORTED_PYTHON_VERSIONS)
    docker_engine = DockerEngine(settings.docker_cli, timeout=10)
    try:
        return available_python_versions(settings, docker_engine)
    finally:
        docker_engine.close()


def _plan(archive: Path, options: BuildOptions, settings: Settings, owner: str) -> PlanOut:
    settings.workspaces_dir.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="plan-", dir=settings.workspaces_dir))
    try:
        extracted = workspace / "src"
        extracted.mkdir()
        summary = extract_archive(archive, extracted, settings)
        root = project_root(extracted, summary, options.context_dir)
        # As the build does: credentials in the project's files are never shown.
        credentials_warning = warning_for(redact_project(root))
        versions = _available_versions(settings)
        plan = detect(
            root,
            available_versions=versions,
            default_version=settings.default_python_version,
            requested_version=options.python_version,
            dockerfile=options.dockerfile,
            test_command=options.test_command,
        )
        if credentials_warning is not None:
            plan.warnings.insert(0, credentials_warning)
        if plan.dockerfile is not None:
            text = redact_line(
                (root / plan.dockerfile).read_text(encoding="utf-8", errors="replace")
            )
            return PlanOut(plan=plan.to_dict(), dockerfile=text, generated=False)
        bases = BaseImages(
            builder=settings.builder_image(plan.python_version),
            runtime=settings.runtime_image(plan.python_version),
        )
        rendered = render(plan, bases, build_id="(plan)", cache_id=cache_scope(owner))
        return PlanOut(plan=plan.to_dict(), dockerfile=rendered.dockerfile, generated=True)
    except (DetectionError, ProjectRootMissing) as exc:
        raise ProjectInvalid(str(exc)) from exc
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


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

"""From an uploaded archive to what will be built: the build's "preparing" phase.

Extract the archive safely, find the project in it, take out the credentials written into its
files, detect the plan, then render a Dockerfile or check the project's own (BuildKit's parser,
refused BUILDKIT_* arguments, the image allowlist, lint findings). `POST /api/v1/plan` and the
pipeline both call `prepare`, so a plan passes exactly when a build would get past preparing, and
both refuse with the same failure code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.access.namespaces import cache_scope
from core.builds.options import BuildOptions
from core.builds.reuse import tree_digest
from core.detection.detect import DetectionError, Plan, detect
from core.dockerfile.lint import lint
from core.dockerfile.render import BaseImages, render
from core.dockerfile.syntax import (
    DockerfileInvalid,
    image_uses,
    refused_build_args,
    scope_cache_mounts,
)
from core.dockerfile.syntax import parse as read_dockerfile
from core.errors import ArchiveRejected
from core.settings import Settings
from core.sources.archive import extract_archive
from core.sources.credentials import redact_line
from core.sources.workspace import ProjectRootMissing, project_root
from core.status import Failure
from core.supply_chain.gate import base_image_gate
from core.supply_chain.policy import final_base_image

GENERATED_DOCKERFILE = "Dockerfile.imagebuilder"
# The project's own Dockerfile as built (cache mounts scoped), beside the context, not in it.
OWN_DOCKERFILE = "Dockerfile.project"


class PreparationRefused(Exception):
    """The project cannot be built as given: the failure (code and message) says why. `plan` and
    `dockerfile` are what was found before the refusal (kept with the failed build)."""

    def __init__(self, failure: Failure, *, dockerfile: str | None = None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.plan: Plan | None = None
        self.dockerfile = dockerfile


@dataclass(frozen=True)
class Prepared:
    root: Path
    # The project's files as uploaded, before credentials are taken out or files generated.
    tree: str
    plan: Plan
    # The Dockerfile as stored and shown (the project's own without credentials, or generated).
    dockerfile: str
    # The file that is built, in the workspace beside the project (not in its context).
    dockerfile_path: Path
    generated: bool
    # The image the runtime stage (or the project's final stage) starts from, if it is known.
    base_image: str | None

    @property
    def target(self) -> str | None:
        return "runtime" if self.generated else None


@dataclass(frozen=True)
class Preparation:
    """What `prepare` needs besides the archive: who asks, what the builder has, and callbacks
    for the steps that differ between a plan and a build."""

    settings: Settings
    owner: str
    build_id: str
    available_versions: Sequence[str]
    # Takes the credentials out of the project's files; returns the plan's warning, if any.
    take_credentials: Callable[[Path], str | None]
    # Whether the builder holds an image; None where it cannot be asked (an API without Docker).
    image_present: Callable[[str], bool] | None
    # Progress lines for the build log.
    say: Callable[[str], None]


def prepare(
    archive: Path, workspace: Path, options: BuildOptions, context: Preparation
) -> Prepared:
    """Turn `archive` into a plan and a Dockerfile in `workspace`, with every check a build makes
    before BuildKit runs; raises PreparationRefused with the build's failure."""
    root = _extract(archive, workspace, options, context)
    tree = tree_digest(root)
    warning = context.take_credentials(root)
    plan = _plan(root, options, context, warning)
    try:
        buildkit_args = refused_build_args(list(options.build_args))
        if buildkit_args:
            raise PreparationRefused(
                Failure(
                    "dockerfile_invalid",
                    f"The build argument {buildkit_args[0]} is read by BuildKit itself "
                    "(BUILDKIT_* arguments pick frontends and cache namespaces); it is refused.",
                )
            )
        if plan.dockerfile is not None:
            text, path = _own_dockerfile(root, workspace, plan, options, context)
            generated = False
        else:
            text, path = _generated_dockerfile(root, workspace, plan, context)
            generated = True
    except PreparationRefused as refused:
        refused.plan = plan
        raise
    base = final_base_image(text, options.build_args, target="runtime" if generated else None)
    return Prepared(root, tree, plan, text, path, generated, base)


def _extract(archive: Path, workspace: Path, options: BuildOptions, context: Preparation) -> Path:
    extracted = workspace / "src"
    extracted.mkdir(parents=True)
    try:
        summary = extract_archive(archive, extracted, context.settings)
    except ArchiveRejected as exc:
        raise PreparationRefused(Failure(exc.code, exc.detail)) from exc
    try:
        root = project_root(extracted, summary, options.context_dir)
    except ProjectRootMissing as exc:
        raise PreparationRefused(exc.failure) from exc
    context.say(f"source: {summary.files} files, {summary.uncompressed_bytes / 1e6:.1f} MB")
    return root


def _plan(root: Path, options: BuildOptions, context: Preparation, warning: str | None) -> Plan:
    try:
        plan = detect(
            root,
            available_versions=context.available_versions,
            default_version=context.settings.default_python_version,
            requested_version=options.python_version,
            dockerfile=options.dockerfile,
            test_command=options.test_command,
        )
    except DetectionError as exc:
        raise PreparationRefused(Failure("project_invalid", str(exc))) from exc
    if warning is not None:
        plan.warnings.insert(0, warning)
    for reason in plan.reasons:
        context.say(f"plan: {reason}")
    for line in plan.warnings:
        context.say(f"warning: {line}")
    return plan


def _own_dockerfile(
    root: Path, workspace: Path, plan: Plan, options: BuildOptions, context: Preparation
) -> tuple[str, Path]:
    assert plan.dockerfile is not None
    settings = context.settings
    path = root / plan.dockerfile
    size = path.stat().st_size
    if size > settings.max_dockerfile_bytes:
        raise PreparationRefused(
            Failure(
                "dockerfile_invalid",
                f"{plan.dockerfile} is {size} bytes; at most "
                f"{settings.max_dockerfile_bytes} bytes are accepted.",
            )
        )
    # Already without credentials when its name says Dockerfile (redact_project); any other
    # name is cleaned here, before it is stored, shown or built.
    text = redact_line(path.read_text(encoding="utf-8", errors="replace"))
    try:
        read_dockerfile(text, max_bytes=settings.max_dockerfile_bytes)
        refused = refused_build_args([], text)
        image_uses(text, options.build_args)  # refuses what it cannot resolve
        # What is built: the same file with every cache mount in the owner's scope.
        scoped = scope_cache_mounts(text, cache_scope(context.owner))
    except DockerfileInvalid as exc:
        raise PreparationRefused(
            Failure("dockerfile_invalid", f"{plan.dockerfile} is refused: {exc}.")
        ) from exc
    if refused:
        raise PreparationRefused(
            Failure(
                "dockerfile_invalid",
                f"{plan.dockerfile} declares ARG {refused[0]}: BUILDKIT_* arguments are "
                "read by BuildKit itself, so they are refused.",
            )
        )
    findings = lint(text)
    plan.dockerfile_findings = [finding.to_dict() for finding in findings]
    for finding in findings:
        context.say(f"dockerfile: {plan.dockerfile} {finding}")
    if not findings:
        context.say(f"dockerfile: {plan.dockerfile}: no lint findings")
    refused_image = base_image_gate(settings, text, options, context.owner)
    if refused_image is not None:
        raise PreparationRefused(refused_image, dockerfile=text)
    built = workspace / OWN_DOCKERFILE
    built.write_text(scoped, encoding="utf-8")
    return text, built


def _generated_dockerfile(
    root: Path, workspace: Path, plan: Plan, context: Preparation
) -> tuple[str, Path]:
    settings = context.settings
    bases = BaseImages(
        builder=settings.builder_image(plan.python_version),
        runtime=settings.runtime_image(plan.python_version),
    )
    if not settings.pull_base_images and context.image_present is not None:
        missing = [
            image for image in (bases.builder, bases.runtime) if not context.image_present(image)
        ]
        if missing:
            raise PreparationRefused(
                Failure(
                    "base_image_unavailable",
                    f"Base image {missing[0]} is not available on this builder.",
                )
            )
    rendered = render(plan, bases, build_id=context.build_id, cache_id=cache_scope(context.owner))
    for relative, content in rendered.files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    if rendered.dockerignore is not None:
        (root / ".dockerignore").write_text(rendered.dockerignore, encoding="utf-8")
        context.say(".dockerignore: generated (the project has none)")
    path = workspace / GENERATED_DOCKERFILE
    path.write_text(rendered.dockerfile, encoding="utf-8")
    return rendered.dockerfile, path

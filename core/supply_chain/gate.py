"""Which images a project's own Dockerfile may use: never another owner's, and only what the
allowlist lets through (the owner's own namespace always)."""

from __future__ import annotations

from core.access.namespaces import foreign_images, owner_component
from core.builds.options import BuildOptions
from core.dockerfile.syntax import image_uses
from core.settings import Settings
from core.status import Failure
from core.supply_chain.policy import Violation, check_base_images


def base_image_gate(
    settings: Settings, dockerfile_text: str, options: BuildOptions, owner: str
) -> Failure | None:
    """For a project's own Dockerfile, before it is built: a failure naming every image use that
    reads another owner's images, or that the allowlist refuses (the owner's own namespace is
    always allowed; no allowlist: any other image)."""
    uses = image_uses(dockerfile_text, options.build_args)
    foreign = foreign_images(
        uses, owner=owner, namespace=settings.image_namespace, registry_url=settings.registry_url
    )
    if foreign:
        return Failure(
            "base_image_not_allowed",
            _violations_message(
                [Violation(u.line, u.reference, "another owner's namespace") for u in foreign]
            ),
        )
    allowlist = settings.allowed_base_images
    if allowlist:
        own = owner_component(owner)
        prefixes = filter(None, (settings.image_namespace, settings.registry_url))
        allowlist = [*allowlist, *(f"{prefix}/{own}/**" for prefix in prefixes)]
    violations = check_base_images(dockerfile_text, allowlist, options.build_args)
    if not violations:
        return None
    return Failure("base_image_not_allowed", _violations_message(violations))


def _violations_message(violations: list[Violation]) -> str:
    shown = "; ".join(str(v) for v in violations[:5])
    more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
    return f"The Dockerfile uses images that are not allowed here: {shown}{more}."

"""Explain a failed `docker build` from its output: which code from API.md, and a short message."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.status import Failure

# BuildKit's plain progress prefixes step output with "#<step> <seconds> ".
_STEP_PREFIX = re.compile(r"^#\d+ (?:\d+\.\d+ )?")
# The summary BuildKit prints for a failed step: " > [deps 4/5] RUN pip install ...".
_FAILED_STEP = re.compile(r"^\s*> \[(?:(?P<stage>[\w.-]+) )?\d+/\d+\] (?P<instruction>.*?):?$")
_DOCKERFILE_ERRORS = (
    "dockerfile parse error",
    "failed to create LLB definition",
    "unknown instruction",
    "failed to parse stage name",
    "failed to process",
    "Dockerfile cannot be empty",
)
_BASE_IMAGE_ERRORS = (
    "failed to resolve source metadata",
    "pull access denied",
    "failed to do request",
)
DEPENDENCY_STAGES = frozenset({"deps", "source-deps", "test-deps"})


def strip_step_prefix(line: str) -> str:
    return _STEP_PREFIX.sub("", line)


def failed_step(lines: Sequence[str]) -> tuple[str | None, str] | None:
    """(stage name, instruction) of the step BuildKit reports as failed, if it says."""
    for line in reversed(lines):
        match = _FAILED_STEP.match(line)
        if match:
            return match.group("stage"), match.group("instruction")
    return None


def error_lines(lines: Sequence[str], limit: int = 5) -> list[str]:
    """The last lines that look like an error message from the tool that failed."""
    found = [
        text
        for text in (strip_step_prefix(line).strip() for line in lines)
        # uv explains a failure on "cause:" (or "Caused by:") lines after its "error:" line.
        if re.match(r"^(E: |ERROR|error:|cause:|Caused by:|[\w.]*Error\b|.*: error: )", text)
        and "executor failed running" not in text
        and not text.startswith("error: failed to solve")
    ]
    return found[-limit:]


def classify_build_failure(lines: Sequence[str], *, generated: bool) -> Failure:
    """Map the output of a failed build to a failure code and a human message."""
    text = "\n".join(lines)
    # Before the Dockerfile check: BuildKit reports an unresolvable FROM as
    # "failed to create LLB definition: failed to do request: ...".
    if any(needle in text for needle in _BASE_IMAGE_ERRORS):
        return Failure(
            "base_image_unavailable",
            "A base image named in FROM could not be found or pulled.",
        )
    if any(needle in text for needle in _DOCKERFILE_ERRORS):
        detail = next((ln for ln in reversed(lines) if "error" in ln.lower()), "")
        return Failure("dockerfile_invalid", f"The Dockerfile is invalid: {detail.strip()}")
    step = failed_step(lines)
    errors = error_lines(lines)
    because = f": {errors[-1]}" if errors else ""
    if step is not None and generated and step[0] in DEPENDENCY_STAGES:
        return Failure(
            "dependency_install_failed",
            f"Installing the dependencies failed{because}",
        )
    where = f" at {step[1]}" if step is not None else ""
    return Failure("build_failed", f"The image build failed{where}{because}")

"""Where the project is inside an extracted archive."""

from __future__ import annotations

from pathlib import Path

from core.sources.archive import ArchiveSummary
from core.status import Failure


class ProjectRootMissing(ValueError):
    def __init__(self, context_dir: str) -> None:
        super().__init__(f"context_dir {context_dir!r} is not a folder in the archive.")
        self.failure = Failure("context_dir_missing", str(self))


def project_root(extracted: Path, summary: ArchiveSummary, context_dir: str | None) -> Path:
    """`context_dir` (relative to the archive, or to its single top folder as in GitHub's
    "repo-main/" zips), else that single top folder, else the archive itself."""
    top = extracted / summary.common_root if summary.common_root else None
    if context_dir is None:
        return top or extracted
    for base in (extracted, top):
        if base is not None and (base / context_dir).is_dir():
            return base / context_dir
    raise ProjectRootMissing(context_dir)

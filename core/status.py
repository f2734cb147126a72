"""Build statuses, phases and the table of allowed transitions (pure data; see core.transitions).

queued ──► running ──► succeeded | failed | error | timed_out | cancelled
  │  ▲        │
  │  └────────┘  (handed back: worker lost or shut down mid-build, attempts left)
  └──► cancelled | error
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BuildStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ERROR = "error"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class Phase(StrEnum):
    PREPARING = "preparing"
    BUILDING = "building"
    TESTING = "testing"
    SCANNING = "scanning"
    EXPORTING = "exporting"


TERMINAL = frozenset(
    {
        BuildStatus.SUCCEEDED,
        BuildStatus.FAILED,
        BuildStatus.ERROR,
        BuildStatus.TIMED_OUT,
        BuildStatus.CANCELLED,
    }
)

ALLOWED: dict[BuildStatus, frozenset[BuildStatus]] = {
    BuildStatus.QUEUED: frozenset({BuildStatus.RUNNING, BuildStatus.CANCELLED, BuildStatus.ERROR}),
    BuildStatus.RUNNING: TERMINAL | {BuildStatus.QUEUED},
    **{status: frozenset() for status in TERMINAL},
}


def sources_of(target: BuildStatus) -> frozenset[BuildStatus]:
    return frozenset(source for source, targets in ALLOWED.items() if target in targets)


@dataclass(frozen=True)
class Failure:
    """Why a build did not succeed: a stable code from API.md and a human sentence."""

    code: str
    message: str

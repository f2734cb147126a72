"""Who is calling: an owner name and whether it may see everything."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    owner: str
    admin: bool = False

    def can_see(self, owner: str) -> bool:
        return self.admin or self.owner == owner

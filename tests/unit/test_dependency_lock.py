"""requirements.lock: the service image's pinned dependencies agree with pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement

from core.detection.lockfile import LockInvalid, locked_packages
from core.supply_chain.advisories import normalize_name
from tests.conftest import ROOT

LOCK = ROOT / "requirements.lock"


class TestLockedPackages:
    def test_reads_pins_across_hash_continuations_and_markers(self) -> None:
        text = (
            "# header\n"
            "Foo_Bar==1.2.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via x\n"
            "pywin32==312 ; sys_platform == 'win32' \\\n    --hash=sha256:cc\n"
        )
        assert locked_packages(text) == [("foo-bar", "1.2.0"), ("pywin32", "312")]

    @pytest.mark.parametrize("line", ["requests>=2.0", "requests", "requests==1.0,<2", "==1"])
    def test_a_line_that_is_not_an_exact_pin_is_refused(self, line: str) -> None:
        with pytest.raises(LockInvalid, match="line 2"):
            locked_packages(f"a==1\n{line}\n")


class TestServiceLock:
    def test_every_runtime_dependency_is_locked_within_its_declared_range(self) -> None:
        declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        locked = dict(locked_packages(LOCK.read_text()))
        for text in declared:
            requirement = Requirement(text)
            name = normalize_name(requirement.name)
            assert name in locked, f"{name} is declared but not in requirements.lock (make lock)"
            assert requirement.specifier.contains(locked[name], prereleases=True), (
                f"{name}=={locked[name]} is outside {requirement.specifier} (make lock)"
            )

    def test_every_pin_carries_a_hash(self) -> None:
        entries = re.split(r"\n(?=[a-z0-9])", LOCK.read_text().split("\n", 2)[2])
        assert entries
        for entry in entries:
            assert "--hash=sha256:" in entry, entry.splitlines()[0]

    def test_the_service_image_installs_the_lock_with_hashes(self) -> None:
        dockerfile = (ROOT / "Dockerfile").read_text()
        assert "COPY requirements.lock" in dockerfile
        assert re.search(r"pip install --require-hashes[^\n]*-r requirements.lock", dockerfile)
        assert re.search(r"pip install --no-deps \.", dockerfile)

"""The service's own locked dependencies, checked against the advisory database it keeps
(`python -m core.admin advisories check-lock`), here loaded with the OSV records in
tests/advisories, which cover urllib3: a package the lock really holds."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from core.detection.lockfile import locked_packages
from core.settings import Settings
from tests.conftest import ROOT
from tests.integration.test_supply_chain import ADVISORIES, admin_cli

LOCK = ROOT / "requirements.lock"


class TestServiceDependencies:
    def test_the_locked_dependencies_have_no_known_advisory(
        self, settings: Settings, sqlite_engine: Engine
    ) -> None:
        assert "urllib3" in dict(locked_packages(LOCK.read_text()))
        assert admin_cli(settings, "advisories", "import", str(ADVISORIES)).returncode == 0
        checked = admin_cli(settings, "advisories", "check-lock", str(LOCK))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert ", 0 findings (4 advisories" in checked.stdout

    def test_a_lock_with_a_vulnerable_pin_fails_and_names_it(
        self, settings: Settings, sqlite_engine: Engine, tmp_path: Path
    ) -> None:
        lock = tmp_path / "requirements.lock"
        lock.write_text("certifi==2026.1.1\nurllib3==1.26.4 \\\n    --hash=sha256:00\n")
        admin_cli(settings, "advisories", "import", str(ADVISORIES))
        checked = admin_cli(settings, "advisories", "check-lock", str(lock))
        assert checked.returncode == 1
        assert "GHSA-q2q7-5pp4-w6pg (high) urllib3 1.26.4, fixed in 1.26.5" in checked.stdout
        assert "2 locked packages, 2 findings" in checked.stdout

    def test_without_an_imported_database_the_check_fails(
        self, settings: Settings, sqlite_engine: Engine
    ) -> None:
        checked = admin_cli(settings, "advisories", "check-lock", str(LOCK))
        assert checked.returncode == 1
        assert "no advisory database was imported" in checked.stderr

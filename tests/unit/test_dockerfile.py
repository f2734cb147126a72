"""core.dockerfile: golden files for the fixture projects, and the properties every render keeps.

Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 make test` (or pytest),
then review the diff.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import pytest

from core.detect import Plan, detect
from core.dockerfile import APP_UID, GENERATED_DIR, BaseImages, RenderedBuild, render

TESTS = Path(__file__).resolve().parent.parent
PROJECTS = TESTS / "projects"
GOLDEN = TESTS / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
BASES = BaseImages("imagebuilder/python-builder:3.11", "imagebuilder/python:3.11")
GENERATED_FIXTURES = ("passing", "failing_test", "bad_dependency", "syntax_error", "slow_tests")
_FROM = re.compile(r"^FROM (?P<image>\S+) AS (?P<name>\S+)$")


def plan_of(root: Path, **overrides: object) -> Plan:
    plan = detect(root, available_versions=["3.11"], default_version="3.11")
    for name, value in overrides.items():
        setattr(plan, name, value)
    return plan


def render_project(root: Path) -> RenderedBuild:
    return render(plan_of(root), BASES, build_id="b_GOLDEN")


def stages(dockerfile: str) -> dict[str, tuple[str, list[str]]]:
    """Stage name -> (FROM image, instruction lines without comments and blank lines)."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in dockerfile.splitlines():
        match = _FROM.match(line)
        if match:
            current = []
            found[match.group("name")] = (match.group("image"), current)
        elif current is not None and line.strip() and not line.startswith("#"):
            current.append(line)
    return found


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def compare_golden(path: Path, actual: str) -> None:
    """Fail with a unified diff when `actual` differs from the golden file (or rewrite it)."""
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.is_file():
        pytest.fail(f"golden file {path.name} is missing; run with UPDATE_GOLDEN=1 to write it")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"golden/{path.name}",
            tofile="rendered",
        )
        pytest.fail(
            f"rendered output differs from {path.name} (UPDATE_GOLDEN=1 rewrites it):\n"
            + "".join(diff),
            pytrace=False,
        )


class TestGoldenFiles:
    @pytest.mark.parametrize("fixture", GENERATED_FIXTURES)
    def test_dockerfile_matches_golden(self, fixture: str) -> None:
        assert not (PROJECTS / fixture / "Dockerfile").exists()

        rendered = render_project(PROJECTS / fixture)

        compare_golden(GOLDEN / f"{fixture}.Dockerfile", rendered.dockerfile)

    @pytest.mark.parametrize("fixture", GENERATED_FIXTURES)
    def test_generated_files_match_golden(self, fixture: str) -> None:
        rendered = render_project(PROJECTS / fixture)

        compare_golden(
            GOLDEN / f"{fixture}.files.json",
            json.dumps(rendered.files, indent=2, sort_keys=True) + "\n",
        )

    def test_every_golden_file_belongs_to_a_fixture(self) -> None:
        expected = {f"{name}.Dockerfile" for name in GENERATED_FIXTURES} | {
            f"{name}.files.json" for name in GENERATED_FIXTURES
        }

        assert {path.name for path in GOLDEN.iterdir()} == expected


class TestRender:
    def test_installs_dependencies_before_copying_the_source(self) -> None:
        lines = render_project(PROJECTS / "passing").dockerfile.splitlines()

        install = lines.index(
            next(
                line
                for line in lines
                if "pip install -r /tmp/imagebuilder/requirements.txt" in line
            )
        )
        assert install < lines.index("COPY . .")

    def test_dependency_stage_copies_only_the_generated_files(self) -> None:
        deps = stages(render_project(PROJECTS / "passing").dockerfile)["deps"][1]

        copies = [line for line in deps if line.startswith("COPY")]
        generated = f"{GENERATED_DIR}/requirements.txt {GENERATED_DIR}/constraints.txt"
        assert copies == [f"COPY {generated} /tmp/imagebuilder/"]

    def test_runtime_stage_is_the_slim_base_running_as_non_root(self) -> None:
        image, lines = stages(render_project(PROJECTS / "failing_test").dockerfile)["runtime"]

        assert image == BASES.runtime
        assert f"USER {APP_UID}:{APP_UID}" in lines
        assert APP_UID == 10001
        assert not any(BASES.builder in line for line in lines)
        assert not any(re.search(r"apt-get|apk |gcc|build-essential", line) for line in lines)
        # Everything it copies from the builder comes through a stage, never the builder base.
        assert [line for line in lines if line.startswith("COPY")] == [
            "COPY --from=deps /opt/venv /opt/venv",
            "COPY --from=source /src /app",
        ]

    def test_test_stage_is_the_runtime_plus_test_dependencies(self) -> None:
        image, lines = stages(render_project(PROJECTS / "passing").dockerfile)["test"]

        assert image == "runtime"
        assert lines == ["COPY --from=test-deps /opt/venv /opt/venv"]

    def test_source_only_change_keeps_the_dependency_files(self, tmp_path: Path) -> None:
        requirements = {"requirements.txt": "flask==3.0.0\n", "requirements-dev.txt": "pytest\n"}
        first = write_tree(tmp_path / "one", {**requirements, "app.py": "print(1)\n"})
        second = write_tree(
            tmp_path / "two",
            {**requirements, "app.py": "print(2)\n", "lib/util.py": "", "tests/test_x.py": ""},
        )

        one = render(plan_of(first), BASES, build_id="b_ONE")
        two = render(plan_of(second), BASES, build_id="b_TWO")

        assert one.files == two.files
        assert stages(one.dockerfile)["deps"] == stages(two.dockerfile)["deps"]

    def test_dependency_change_changes_the_dependency_files(self, tmp_path: Path) -> None:
        first = write_tree(tmp_path / "one", {"requirements.txt": "flask==3.0.0\n"})
        second = write_tree(tmp_path / "two", {"requirements.txt": "flask==3.0.1\n"})

        one = render_project(first)
        two = render_project(second)

        key = f"{GENERATED_DIR}/requirements.txt"
        assert (one.files[key], two.files[key]) == ("flask==3.0.0\n", "flask==3.0.1\n")

    @pytest.mark.parametrize(
        "command",
        [["python", "main.py"], ["serve", "--port", "8000"], ['say "hi"', "back\\slash", "ü"]],
    )
    def test_cmd_is_valid_json(self, tmp_path: Path, command: list[str]) -> None:
        plan = plan_of(write_tree(tmp_path, {"main.py": ""}), start_command=command)

        cmd = next(
            line
            for line in render(plan, BASES, build_id="b_X").dockerfile.splitlines()
            if line.startswith("CMD ")
        )

        assert json.loads(cmd.removeprefix("CMD ")) == command

    def test_constraints_apply_to_every_install(self, tmp_path: Path) -> None:
        root = write_tree(
            tmp_path,
            {
                "requirements.txt": "flask\n-c constraints.txt\n",
                "constraints.txt": "werkzeug<4\n",
                "requirements-test.txt": "pytest\n",
            },
        )

        rendered = render_project(root)

        installs = [line for line in rendered.dockerfile.splitlines() if "pip install -r" in line]
        assert len(installs) == 2
        assert all(line.endswith(" -c /tmp/imagebuilder/constraints.txt") for line in installs)
        assert rendered.files[f"{GENERATED_DIR}/constraints.txt"] == "werkzeug<4\n"

    def test_dependencies_from_source_install_the_project_in_the_source_stage(
        self, tmp_path: Path
    ) -> None:
        root = write_tree(tmp_path, {"setup.py": "from setuptools import setup\nsetup()\n"})

        found = stages(render_project(root).dockerfile)

        assert found["source"][1][-1].endswith("pip install .")
        assert found["test-deps"][0] == "source"
        assert "COPY --from=source /opt/venv /opt/venv" in found["runtime"][1]
        assert not any("/wheels/*.whl" in line for line in found["runtime"][1])

    def test_static_package_is_built_as_a_wheel_and_installed_without_deps(self) -> None:
        found = stages(render_project(PROJECTS / "failing_test").dockerfile)

        assert found["source"][1][-1].endswith("pip wheel --no-deps --wheel-dir /wheels .")
        assert found["test-deps"][0] == "deps"
        assert any(
            "pip install --no-deps --no-index --no-cache-dir /wheels/*.whl" in line
            for line in found["runtime"][1]
        )

    def test_no_requirements_means_no_install_step(self, tmp_path: Path) -> None:
        root = write_tree(tmp_path, {"main.py": ""})

        rendered = render_project(root)

        assert "pip install" not in rendered.dockerfile
        assert set(rendered.files.values()) == {""}

    def test_ca_bundle_is_a_secret_mount_never_a_copied_file(self) -> None:
        dockerfile = render_project(PROJECTS / "passing").dockerfile

        pip_lines = [line for line in dockerfile.splitlines() if " pip " in line]
        assert pip_lines
        assert all("--mount=type=secret,id=ca_bundle" in line for line in pip_lines)
        assert "ca_bundle" not in "".join(
            line for line in dockerfile.splitlines() if line.startswith(("COPY", "ADD"))
        )

"""core.dockerfile.render: golden files for the fixture projects, and the properties every render
keeps.

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

from core.detection.detect import Plan, detect
from core.dockerfile.lint import frontend_reference, lint
from core.dockerfile.render import (
    APP_UID,
    GENERATED_DIR,
    BaseImages,
    RenderedBuild,
    healthcheck_probe,
    render,
)

TESTS = Path(__file__).resolve().parent.parent
PROJECTS = TESTS / "projects"
GOLDEN = TESTS / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
BASES = BaseImages("imagebuilder/python-builder:3.11", "imagebuilder/python:3.11")
# Fixture name -> its project root under tests/projects (a monorepo is built from a sub-folder).
FIXTURE_ROOTS = {
    "passing": "passing",
    "failing_test": "failing_test",
    "bad_dependency": "bad_dependency",
    "syntax_error": "syntax_error",
    "slow_tests": "slow_tests",
    "requirements_app": "requirements_app",
    "setuptools_pkg": "setuptools_pkg",
    "hatch_pkg": "hatch_pkg",
    "flit_pkg": "flit_pkg",
    "poetry_app": "poetry_app",
    "pdm_app": "pdm_app",
    "uv_app": "uv_app",
    "pipenv_app": "pipenv_app",
    "setuppy_lib": "setuppy_lib",
    "fastapi_app": "fastapi_app",
    "flask_factory": "flask_factory",
    "django_app": "django_app",
    "c_extension": "c_extension",
    "console_script": "console_script",
    "monorepo": "monorepo/services/api",
    "conflicting_versions": "conflicting_versions",
    "optional_native_library": "optional_native_library",
    "boot_crash": "boot_crash",
}
GENERATED_FIXTURES = tuple(FIXTURE_ROOTS)
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
        root = PROJECTS / FIXTURE_ROOTS[fixture]
        assert not (root / "Dockerfile").exists()

        rendered = render_project(root)

        compare_golden(GOLDEN / f"{fixture}.Dockerfile", rendered.dockerfile)

    @pytest.mark.parametrize("fixture", GENERATED_FIXTURES)
    def test_generated_files_match_golden(self, fixture: str) -> None:
        rendered = render_project(PROJECTS / FIXTURE_ROOTS[fixture])

        files = dict(rendered.files)
        if rendered.dockerignore is not None:
            files[".dockerignore"] = rendered.dockerignore
        compare_golden(
            GOLDEN / f"{fixture}.files.json",
            json.dumps(files, indent=2, sort_keys=True) + "\n",
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
            "COPY --from=source --chown=10001:10001 /src /app",
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

    def test_dependencies_from_source_come_from_the_built_wheel(self, tmp_path: Path) -> None:
        root = write_tree(tmp_path, {"setup.py": "from setuptools import setup\nsetup()\n"})

        found = stages(render_project(root).dockerfile)

        # The wheel stage lists what the wheel declares; source-deps installs exactly that list,
        # so the layer is keyed by its content, not by the source.
        assert found["wheel"][1][-1].endswith("> /meta/requirements.txt")
        assert found["source-deps"][0] == "deps"
        assert found["source-deps"][1][0] == (
            "COPY --from=wheel /meta/requirements.txt /tmp/imagebuilder/wheel-requirements.txt"
        )
        assert found["source-deps"][1][1].endswith(
            "uv pip install -r /tmp/imagebuilder/wheel-requirements.txt"
        )
        assert found["test-deps"][0] == "source-deps"
        assert "COPY --from=source-deps /opt/venv /opt/venv" in found["runtime"][1]
        assert any("--no-deps --no-index" in line for line in found["runtime"][1])

    def test_static_package_is_built_as_a_wheel_and_installed_without_deps(self) -> None:
        found = stages(render_project(PROJECTS / "failing_test").dockerfile)

        assert any(
            line.endswith("uv build --quiet --wheel --out-dir /wheels .")
            for line in found["wheel"][1]
        )
        assert found["test-deps"][0] == "deps"
        assert any(
            "uv pip install --quiet --python /opt/venv/bin/python --no-deps --no-index --no-cache"
            " /wheels/*.whl" in line
            for line in found["runtime"][1]
        )

    def test_no_requirements_means_no_install_step(self, tmp_path: Path) -> None:
        root = write_tree(tmp_path, {"main.py": ""})

        rendered = render_project(root)

        assert "pip install" not in rendered.dockerfile
        assert set(rendered.files.values()) == {""}

    @pytest.mark.parametrize("fixture", ["passing", "poetry_app", "setuppy_lib"])
    def test_ca_bundle_is_a_secret_mount_never_a_copied_file(self, fixture: str) -> None:
        dockerfile = render_project(PROJECTS / fixture).dockerfile

        # Every step that may reach a package index trusts the bundle; offline ones need not.
        fetching = [
            line
            for line in dockerfile.splitlines()
            if (" pip " in line or "uv build" in line) and "--no-index" not in line
        ]
        assert fetching
        assert all("--mount=type=secret,id=ca_bundle" in line for line in fetching)
        assert "ca_bundle" not in "".join(
            line for line in dockerfile.splitlines() if line.startswith(("COPY", "ADD"))
        )


def copy_project(source: Path, target: Path) -> Path:
    for path in source.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())
    return target


class TestCaching:
    @pytest.mark.parametrize(
        "fixture", ["uv_app", "poetry_app", "pdm_app", "pipenv_app", "fastapi_app", "setuppy_lib"]
    )
    def test_source_only_change_keeps_the_dependency_stages(
        self, tmp_path: Path, fixture: str
    ) -> None:
        one = copy_project(PROJECTS / fixture, tmp_path / "one")
        two = copy_project(PROJECTS / fixture, tmp_path / "two")
        (two / "new_module.py").write_text("VALUE = 2\n", encoding="utf-8")
        (two / "tests").mkdir(exist_ok=True)
        (two / "tests" / "test_more.py").write_text("def test_x():\n    pass\n")

        first = render(plan_of(one), BASES, build_id="b_ONE")
        second = render(plan_of(two), BASES, build_id="b_TWO")

        assert first.files == second.files
        for stage in ("tools", "deps", "test-deps"):
            assert stages(first.dockerfile)[stage] == stages(second.dockerfile)[stage]

    @pytest.mark.parametrize(
        ("fixture", "copied"),
        [
            ("uv_app", "COPY pyproject.toml uv.lock /tmp/imagebuilder/project/"),
            ("poetry_app", "COPY pyproject.toml poetry.lock /tmp/imagebuilder/project/"),
            ("pdm_app", "COPY pyproject.toml pdm.lock /tmp/imagebuilder/project/"),
        ],
    )
    def test_lock_projects_copy_only_the_lock_and_pyproject(
        self, fixture: str, copied: str
    ) -> None:
        deps = stages(render_project(PROJECTS / fixture).dockerfile)["deps"][1]

        copies = [line for line in deps if line.startswith("COPY")]
        assert copies == [
            f"COPY {GENERATED_DIR}/requirements.txt {GENERATED_DIR}/constraints.txt "
            "/tmp/imagebuilder/",
            copied,
        ]
        assert "COPY . ." not in deps

    def test_dependency_stages_come_before_any_source_copy(self) -> None:
        found = stages(render_project(PROJECTS / "poetry_app").dockerfile)

        for stage in ("tools", "deps", "test-deps"):
            assert not any(line.startswith("COPY . ") for line in found[stage][1])

    def test_nothing_in_the_dockerfile_changes_per_build_but_the_comment(self) -> None:
        plan = plan_of(PROJECTS / "fastapi_app")

        one = render(plan, BASES, build_id="b_ONE").dockerfile.splitlines()
        two = render(plan, BASES, build_id="b_TWO").dockerfile.splitlines()

        assert one[1:] == two[1:]
        labels = " ".join(line for line in one if line.startswith("LABEL"))
        assert "created" not in labels
        assert "build-id" not in labels


class TestLocks:
    def test_uv_lock_is_exported_frozen_without_dev_groups(self) -> None:
        deps = stages(render_project(PROJECTS / "uv_app").dockerfile)["deps"][1]

        assert any(
            "uv export --frozen --no-emit-project --no-emit-workspace --no-default-groups" in line
            and "--group" not in line
            for line in deps
        )

    def test_uv_test_groups_come_from_the_lock(self) -> None:
        test_deps = stages(render_project(PROJECTS / "uv_app").dockerfile)["test-deps"][1]

        assert any("--no-default-groups" in line and "--group dev" in line for line in test_deps)

    def test_poetry_exports_main_then_the_test_group(self) -> None:
        found = stages(render_project(PROJECTS / "poetry_app").dockerfile)

        assert any("poetry export" in line and "--only main" in line for line in found["deps"][1])
        assert any("--with test" in line for line in found["test-deps"][1])
        assert any("poetry==" in line for line in found["tools"][1])

    def test_pdm_exports_prod_then_the_test_group(self) -> None:
        found = stages(render_project(PROJECTS / "pdm_app").dockerfile)

        assert any("pdm export" in line and "--prod" in line for line in found["deps"][1])
        assert any("--dev --group test" in line for line in found["test-deps"][1])

    def test_pipfile_lock_installs_hashed_lines_then_additions(self) -> None:
        rendered = render_project(PROJECTS / "pipenv_app")

        locked = rendered.files[f"{GENERATED_DIR}/locked.txt"]
        assert locked.startswith("iniconfig==2.1.0; python_version >= '3.8' --hash=sha256:")
        deps = stages(rendered.dockerfile)["deps"][1]
        assert any(line.endswith("uv pip install -r /tmp/imagebuilder/locked.txt") for line in deps)
        assert "pipenv" not in rendered.dockerfile


class TestRuntimeStage:
    def test_web_app_exposes_its_port_with_a_healthcheck(self) -> None:
        _, lines = stages(render_project(PROJECTS / "fastapi_app").dockerfile)["runtime"]

        assert "EXPOSE 8000" in lines
        healthcheck = next(line for line in lines if line.startswith("HEALTHCHECK"))
        probe = json.loads(healthcheck.split(" CMD ", 1)[1])
        assert probe[:2] == ["python", "-c"]
        compile(probe[2], "<healthcheck>", "exec")
        assert "127.0.0.1:8000" in probe[2]
        assert any(line.startswith("ENV ") and "PORT=8000" in line for line in lines)

    def test_command_line_program_has_no_port(self) -> None:
        _, lines = stages(render_project(PROJECTS / "console_script").dockerfile)["runtime"]

        assert not any(line.startswith(("EXPOSE", "HEALTHCHECK")) for line in lines)
        assert lines[-1] == 'CMD ["shout"]'

    def test_healthcheck_probe_accepts_any_http_answer(self) -> None:
        probe = healthcheck_probe(8080)

        assert "except e.HTTPError: pass" in probe
        assert "8080" in probe

    def test_environment_and_labels(self) -> None:
        _, lines = stages(render_project(PROJECTS / "setuptools_pkg").dockerfile)["runtime"]

        env = next(line for line in lines if line.startswith("ENV "))
        assert "PYTHONDONTWRITEBYTECODE=1" in env
        assert "PYTHONUNBUFFERED=1" in env
        assert (
            'LABEL org.opencontainers.image.base.name="imagebuilder/python:3.11" '
            'org.opencontainers.image.title="inicount"' in lines
        )

    def test_tools_never_reach_the_runtime_image(self) -> None:
        _, lines = stages(render_project(PROJECTS / "poetry_app").dockerfile)["runtime"]

        assert not any("--from=tools" in line and line.startswith("COPY") for line in lines)
        install = next(line for line in lines if "/wheels/*.whl" in line)
        assert "--mount=type=bind,from=tools" in install


class TestBytecode:
    def test_dependencies_are_compiled_by_the_installer(self) -> None:
        deps = stages(render_project(PROJECTS / "passing").dockerfile)["deps"][1]

        assert "ENV VIRTUAL_ENV=/opt/venv UV_COMPILE_BYTECODE=1" in deps

    def test_the_installed_package_compiles_strictly(self) -> None:
        wheel = stages(render_project(PROJECTS / "setuppy_lib").dockerfile)["wheel"][1]

        check = next(line for line in wheel if "compileall" in line)
        assert "|| " not in check  # a failure fails the build

    def test_the_rest_of_the_source_compiles_leniently(self) -> None:
        source = stages(render_project(PROJECTS / "setuppy_lib").dockerfile)["source"][1]

        compile_line = next(line for line in source if "compileall" in line)
        assert "|| echo" in compile_line


class TestDockerignore:
    def test_generated_when_the_project_has_none(self) -> None:
        rendered = render_project(PROJECTS / "fastapi_app")

        assert rendered.dockerignore is not None
        patterns = rendered.dockerignore.splitlines()
        for pattern in (".git", ".venv", "**/__pycache__", ".tox", "node_modules", "dist"):
            assert pattern in patterns
        assert GENERATED_DIR not in rendered.dockerignore

    def test_none_when_the_project_has_one(self, tmp_path: Path) -> None:
        root = write_tree(tmp_path, {".dockerignore": "secrets\n", "main.py": ""})

        assert render_project(root).dockerignore is None

    def test_keeps_what_the_build_needs(self, tmp_path: Path) -> None:
        pyproject = (
            '[build-system]\nrequires = ["setuptools>=64", "setuptools-scm>=8"]\n'
            'build-backend = "setuptools.build_meta"\n\n'
            '[project]\nname = "app"\ndynamic = ["version"]\n'
        )
        root = write_tree(
            tmp_path,
            {
                "pyproject.toml": pyproject,
                "requirements.txt": "./dist/vendored-1.0-py3-none-any.whl\n",
                "build/__init__.py": "",
                "env/pyvenv.cfg": "home = /usr/bin\n",
            },
        )

        rendered = render_project(root)

        assert rendered.dockerignore is not None
        patterns = rendered.dockerignore.splitlines()
        assert ".git" not in patterns  # setuptools-scm reads the version from it
        assert "dist" not in patterns  # a requirement points into it
        assert "build" not in patterns  # a package of the project
        assert "env" in patterns  # a virtual environment


class TestGeneratedDockerfileHygiene:
    @pytest.mark.parametrize("fixture", GENERATED_FIXTURES)
    def test_generated_dockerfiles_pass_the_linter(self, fixture: str) -> None:
        dockerfile = render_project(PROJECTS / FIXTURE_ROOTS[fixture]).dockerfile

        assert lint(dockerfile) == []
        assert frontend_reference(dockerfile) is None
        assert "syntax" not in dockerfile.splitlines()[0]


class TestCacheNamespace:
    def test_cache_id_gives_every_download_cache_a_private_id(self) -> None:
        plan = plan_of(PROJECTS / "poetry_app")

        shared = render(plan, BASES, build_id="b_X").dockerfile
        private = render(plan, BASES, build_id="b_X", cache_id="bench-1").dockerfile

        mounts = [line for line in private.splitlines() if "type=cache" in line]
        assert mounts
        assert all(",id=bench-1-" in line for line in mounts)
        assert "bench-1" not in shared
        assert private.replace(",id=bench-1-uv", "").replace(",id=bench-1-pip", "") == shared

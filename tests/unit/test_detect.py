"""core.detection.detect: what a project's files say about building and testing it, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.detection.detect import DetectionError, Plan, detect

AVAILABLE = ("3.9", "3.11", "3.13")
DEFAULT = "3.11"

FLASK_TUTORIAL_PYPROJECT = """\
[project]
name = "flaskr"
version = "1.0.0"
description = "The basic blog app built in the Flask tutorial."
readme = "README.rst"
license = {file = "LICENSE.txt"}
maintainers = [{name = "Pallets", email = "contact@palletsprojects.com"}]
classifiers = ["Framework :: Flask"]
dependencies = [
    "flask",
]

[project.urls]
Documentation = "https://flask.palletsprojects.com/tutorial/"

[project.optional-dependencies]
test = ["pytest"]

[build-system]
requires = ["flit_core<4"]
build-backend = "flit_core.buildapi"

[tool.flit.module]
name = "flaskr"

[tool.pytest.ini_options]
testpaths = ["tests"]
filterwarnings = ["error"]
"""


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text) under `root` and return `root`."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def plan_for(
    root: Path,
    files: dict[str, str],
    *,
    available: tuple[str, ...] = AVAILABLE,
    default: str = DEFAULT,
    requested_version: str | None = None,
    dockerfile: str | None = None,
    test_command: str | None = None,
) -> Plan:
    """Detect the project made of `files`; every plan must explain itself."""
    plan = detect(
        write_tree(root, files),
        available_versions=available,
        default_version=default,
        requested_version=requested_version,
        dockerfile=dockerfile,
        test_command=test_command,
    )
    assert plan.reasons, "a plan without reasons"
    assert all(isinstance(reason, str) and reason for reason in plan.reasons)
    return plan


def has_reason(plan: Plan, fragment: str) -> bool:
    return any(fragment in reason for reason in plan.reasons)


class TestDependencies:
    def test_requirements_txt_app(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "requirements.txt": "flask==3.0.0\n-c constraints.txt\n",
                "constraints.txt": "werkzeug<4\n",
                "app.py": "print('hi')\n",
            },
        )

        assert plan.requirements == ["flask==3.0.0"]
        assert plan.constraints == ["werkzeug<4"]
        assert plan.install_project is False
        assert plan.dependencies_from_source is False
        assert plan.dockerfile is None
        assert has_reason(plan, "dependencies: requirements.txt + constraints.txt")

    def test_requirements_under_a_requirements_folder(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"requirements/base.txt": "flask\n", "requirements/prod.txt": "-r base.txt\n"},
        )

        assert plan.requirements == ["flask"]

    def test_flask_tutorial_pyproject(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "pyproject.toml": FLASK_TUTORIAL_PYPROJECT,
                "flaskr/__init__.py": "def create_app():\n    pass\n",
                "tests/test_factory.py": "def test_config():\n    pass\n",
            },
        )

        assert plan.requirements == ["flask"]
        assert plan.test_requirements == ["pytest"]
        assert plan.install_project is True
        assert plan.dependencies_from_source is False
        assert plan.test_command == "python -m pytest"
        assert has_reason(plan, "[project.dependencies] in pyproject.toml")
        assert has_reason(plan, "[project.optional-dependencies] test")
        assert has_reason(plan, "[tool.pytest.ini_options]")

    def test_dependency_groups_are_test_dependencies(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "app"\nversion = "1"\ndependencies = ["httpx"]\n\n'
            '[dependency-groups]\ntest = ["pytest>=8", "respx"]\ndev = ["ruff", "pytest>=8"]\n'
            'docs = ["sphinx"]\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_x.py": ""})

        assert plan.requirements == ["httpx"]
        assert plan.test_requirements == ["pytest>=8", "respx"]
        assert has_reason(plan, "ruff left out")
        assert has_reason(plan, "[dependency-groups] test")
        assert has_reason(plan, "[dependency-groups] dev")

    def test_dynamic_dependencies_come_from_the_source(self, tmp_path: Path) -> None:
        pyproject = (
            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
            '[project]\nname = "app"\nversion = "1"\ndynamic = ["dependencies"]\n\n'
            "[tool.setuptools.dynamic]\ndependencies = {file = ['deps.txt']}\n"
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "deps.txt": "flask\n"})

        assert plan.dependencies_from_source is True
        assert plan.install_project is True
        assert plan.requirements == []
        assert has_reason(plan, "declares them dynamic")

    def test_setup_py_only(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"setup.py": "from setuptools import setup\nsetup(name='app')\n"},
        )

        assert plan.install_project is True
        assert plan.dependencies_from_source is True
        assert has_reason(plan, "dependencies: setup.py")

    def test_build_system_without_project_table_installs_from_source(self, tmp_path: Path) -> None:
        pyproject = (
            '[build-system]\nrequires = ["poetry-core"]\n'
            'build-backend = "poetry.core.masonry.api"\n\n'
            '[tool.poetry]\nname = "app"\nversion = "1"\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject})

        assert plan.install_project is True
        assert plan.dependencies_from_source is True
        assert has_reason(plan, "dependencies: pyproject.toml has a [build-system]")

    def test_requirements_installing_the_project_itself(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "requirements.txt": "-e .\nflask\n",
                "pyproject.toml": '[project]\nname = "app"\nversion = "1"\n',
            },
        )

        assert plan.requirements == ["flask"]
        assert plan.install_project is True
        assert plan.dependencies_from_source is False

    def test_local_sub_package_is_installed_with_the_source(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"requirements.txt": "flask\n./libs/util\n", "libs/util/setup.py": ""},
        )

        assert plan.dependencies_from_source is True
        assert plan.warnings == ["local requirement 'libs/util' is installed with the source"]

    def test_nothing_declared(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"main.py": "print('hi')\n"})

        assert plan.requirements == []
        assert plan.install_project is False
        assert has_reason(plan, "dependencies: none declared")

    def test_broken_requirements_include_is_a_detection_error(self, tmp_path: Path) -> None:
        with pytest.raises(DetectionError, match="does not exist"):
            plan_for(tmp_path, {"requirements.txt": "-r missing.txt\n"})

    def test_invalid_toml_is_a_detection_error(self, tmp_path: Path) -> None:
        with pytest.raises(DetectionError, match=r"pyproject\.toml is not valid TOML"):
            plan_for(tmp_path, {"pyproject.toml": "[project\nname = 'x'\n"})

    def test_non_utf8_pyproject_is_a_detection_error(self, tmp_path: Path) -> None:
        (tmp_path / "pyproject.toml").write_bytes(b'[project]\nname = "\xff"\n')

        with pytest.raises(DetectionError, match=r"pyproject\.toml is not valid TOML"):
            plan_for(tmp_path, {})


class TestTestDependencies:
    def test_requirements_dev_txt_gives_test_dependencies(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "requirements.txt": "flask\n",
                "requirements-dev.txt": "-r requirements.txt\npytest==8.2.0\nfreezegun\n",
                "tests/test_app.py": "",
            },
        )

        assert plan.requirements == ["flask"]
        # flask, included from requirements.txt, is installed as a runtime dependency already.
        assert plan.test_requirements == ["pytest==8.2.0", "freezegun"]
        assert has_reason(plan, "test dependencies: requirements-dev.txt")

    def test_adds_pytest_when_missing_and_the_command_uses_it(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"requirements-test.txt": "pytest-cov\n", "tests/test_app.py": ""},
        )

        assert plan.test_command == "python -m pytest"
        assert plan.test_requirements == ["pytest-cov", "pytest"]

    def test_does_not_add_pytest_twice(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"requirements-test.txt": "PyTest>=8\n", "tests/test_a.py": ""})

        assert plan.test_requirements == ["PyTest>=8"]

    def test_does_not_add_pytest_for_another_runner(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"tests/test_app.py": ""},
            test_command="python -m unittest discover",
        )

        assert plan.test_command == "python -m unittest discover"
        assert plan.test_requirements == []

    def test_drops_self_referencing_extras(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "My_Proj"\nversion = "1"\n\n'
            "[project.optional-dependencies]\n"
            'lint = ["ruff"]\n'
            'test = ["pytest", "my-proj[lint]", "coverage"]\n'
            'dev = ["myproj-helpers", "my.proj[test]"]\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_a.py": ""})

        # my-proj[lint] means the lint extra too: ruff, a linter the tests do not run.
        assert plan.test_requirements == ["pytest", "coverage", "myproj-helpers"]
        assert has_reason(plan, "test dependencies: ruff left out (linters")


class TestTests:
    def test_no_tests_found_means_no_test_command(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "requirements.txt": "flask\n",
                "app.py": "",
                # Test files inside skipped folders do not count.
                ".venv/lib/test_site.py": "",
                "node_modules/x/test_y.py": "",
            },
        )

        assert plan.test_command is None
        assert plan.test_requirements == []
        assert has_reason(plan, "tests: none found")

    @pytest.mark.parametrize(
        ("files", "evidence"),
        [
            ({"pytest.ini": "[pytest]\n"}, "pytest.ini exists"),
            ({"tests/test_a.py": ""}, "tests/ holds Python files"),
            ({"test/conftest.py": ""}, "test/ holds Python files"),
            ({"pkg/widget_test.py": ""}, "pkg/widget_test.py is a test file"),
            ({"test_app.py": ""}, "test_app.py is a test file"),
        ],
    )
    def test_finds_pytest_tests(self, tmp_path: Path, files: dict[str, str], evidence: str) -> None:
        plan = plan_for(tmp_path, files)

        assert plan.test_command == "python -m pytest"
        assert "pytest" in plan.test_requirements
        assert has_reason(plan, evidence)

    def test_test_command_option_wins(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"app.py": ""}, test_command="pytest -x tests/unit")

        assert plan.test_command == "pytest -x tests/unit"
        assert plan.test_requirements == ["pytest"]
        assert has_reason(plan, "(option test_command)")


class TestPythonVersion:
    def test_option_wins_over_the_project(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {".python-version": "3.9\n", "pyproject.toml": "[project]\nname='a'\n"},
            requested_version="3.13",
        )

        assert plan.python_version == "3.13"
        assert has_reason(plan, "option python_version")

    @pytest.mark.parametrize("content", ["3.9\n", "3.9.18\n", "python-3.9\n", "  python3.9"])
    def test_python_version_file(self, tmp_path: Path, content: str) -> None:
        plan = plan_for(tmp_path, {".python-version": content})

        assert plan.python_version == "3.9"
        assert has_reason(plan, ".python-version says 3.9")

    def test_runtime_txt(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"runtime.txt": "python-3.13.1\n"})

        assert plan.python_version == "3.13"
        assert has_reason(plan, "runtime.txt says 3.13")

    def test_unreadable_pin_falls_back_to_the_default(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {".python-version": "pypy3.10\n"})

        assert plan.python_version == DEFAULT
        assert has_reason(plan, "the service default")

    def test_requires_python_allowing_the_default_chooses_it(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"pyproject.toml": '[project]\nrequires-python = ">=3.9"\n'})

        assert plan.python_version == "3.11"
        assert has_reason(plan, "the default, allowed by requires-python '>=3.9'")

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [(">=3.12", "3.13"), ("<3.11", "3.9"), ("~=3.9.0", "3.9"), (">=3.11.4,<3.12", "3.11")],
    )
    def test_requires_python_chooses_the_newest_allowed(
        self, tmp_path: Path, spec: str, expected: str
    ) -> None:
        plan = plan_for(tmp_path, {"pyproject.toml": f'[project]\nrequires-python = "{spec}"\n'})

        assert plan.python_version == expected

    def test_requires_python_allowing_nothing_available_fails(self, tmp_path: Path) -> None:
        with pytest.raises(DetectionError, match=r"allows none of the available .*3\.9, 3\.11"):
            plan_for(tmp_path, {"pyproject.toml": '[project]\nrequires-python = ">=3.14"\n'})

    def test_invalid_requires_python_is_a_warning(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"pyproject.toml": '[project]\nrequires-python = "3.x+"\n'})

        assert plan.python_version == DEFAULT
        assert plan.warnings == ["requires-python '3.x+' is not a valid specifier; ignored"]


class TestDockerfile:
    def test_uses_the_projects_own_dockerfile(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"Dockerfile": "FROM python:3.11\n", "app.py": ""})

        assert plan.dockerfile == "Dockerfile"
        assert has_reason(plan, "the project's own Dockerfile")

    def test_dockerfile_option_names_another_file(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"Dockerfile": "FROM a\n", "docker/prod.Dockerfile": "FROM b\n"},
            dockerfile="docker/prod.Dockerfile",
        )

        assert plan.dockerfile == "docker/prod.Dockerfile"
        assert has_reason(plan, "(option dockerfile)")

    def test_missing_dockerfile_option_is_a_detection_error(self, tmp_path: Path) -> None:
        with pytest.raises(DetectionError, match="'docker/Dockerfile' is not a file"):
            plan_for(tmp_path, {"app.py": ""}, dockerfile="docker/Dockerfile")

    def test_dockerfile_option_naming_a_folder_is_a_detection_error(self, tmp_path: Path) -> None:
        with pytest.raises(DetectionError, match="is not a file"):
            plan_for(tmp_path, {"docker/x": ""}, dockerfile="docker")

    def test_no_dockerfile_means_a_generated_one(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"app.py": ""})

        assert plan.dockerfile is None


class TestStartCommand:
    def test_first_project_script(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "app"\nversion = "1"\n\n'
            '[project.scripts]\nserve = "app:serve"\nmigrate = "app:migrate"\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "main.py": ""})

        assert plan.start_command == ["serve"]
        assert has_reason(plan, "start: serve because [project.scripts]")

    def test_main_py(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"main.py": "", "app.py": ""})

        assert plan.start_command == ["python", "main.py"]

    def test_plain_python_without_an_entry_point(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"lib.py": ""})

        assert plan.start_command == ["python"]
        assert has_reason(plan, "no entry point found")


class TestPlan:
    def test_to_dict_round_trips_every_field(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"requirements.txt": "flask\n", "tests/test_a.py": ""})

        data = plan.to_dict()

        assert Plan(**data) == plan
        assert data["requirements"] == ["flask"]


def test_setup_py_tests_require_are_test_requirements(tmp_path: Path) -> None:
    # Legacy, but common in older sdists (pyrsistent): `python setup.py test` installed them.
    (tmp_path / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='p', tests_require=['pytest', 'hypothesis<7'])\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_p.py").write_text("def test_p():\n    pass\n")
    plan = detect(tmp_path, available_versions=["3.11"], default_version="3.11")
    assert plan.test_requirements == ["pytest", "hypothesis<7"]
    assert "test dependencies: setup.py tests_require" in plan.reasons

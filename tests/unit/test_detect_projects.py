"""core.detection.detect on the issue-3 project styles: lockfiles, manifests, versions, tests,
start."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.detection.detect import DetectionError, Plan, detect
from core.detection.manifests import (
    pipfile_lock_requirements,
    poetry_constraint,
    poetry_dependencies,
    read_setup_cfg,
    read_setup_py,
)
from tests.unit.test_detect import has_reason, plan_for

PROJECTS = Path(__file__).resolve().parent.parent / "projects"


def fixture_plan(name: str, available: tuple[str, ...] = ("3.9", "3.11", "3.13")) -> Plan:
    return detect(PROJECTS / name, available_versions=available, default_version="3.11")


class TestFixturePlans:
    @pytest.mark.parametrize(
        ("fixture", "source", "tool", "groups", "extras"),
        [
            ("uv_app", "uv.lock", "uv", ["dev"], []),
            ("poetry_app", "poetry.lock", "poetry", ["test"], []),
            ("pdm_app", "pdm.lock", "pdm", ["test"], []),
        ],
    )
    def test_lockfile_is_exported_by_its_tool(
        self, fixture: str, source: str, tool: str, groups: list[str], extras: list[str]
    ) -> None:
        plan = fixture_plan(fixture)

        assert plan.dependency_source == source
        assert plan.lock_tool == tool
        assert plan.lock_files == ["pyproject.toml", source]
        assert plan.test_groups == groups
        assert plan.test_extras == extras
        # The lock installs the runtime and test packages; nothing is added beside it.
        assert plan.requirements == []
        assert plan.test_requirements == []
        assert has_reason(plan, f"dependencies: {source}, installed exactly as locked")

    def test_pipfile_lock_is_converted_to_hashed_pins(self) -> None:
        plan = fixture_plan("pipenv_app")

        assert plan.dependency_source == "Pipfile.lock"
        assert plan.lock_tool is None
        assert len(plan.locked_requirements) == 1
        assert plan.locked_requirements[0].startswith("iniconfig==2.1.0; python_version >= '3.8'")
        assert plan.locked_requirements[0].count("--hash=sha256:") == 2
        assert any(line.startswith("pytest==") for line in plan.locked_test_requirements)
        assert plan.python_version == "3.11"
        assert has_reason(plan, "Pipfile [requires] python_version says 3.11")
        assert plan.warnings == []  # the lock's hash matches the Pipfile

    def test_poetry_python_constraint_and_scripts(self) -> None:
        plan = fixture_plan("poetry_app")

        assert plan.install_project is True
        assert plan.start_command == ["poetry-app"]
        assert has_reason(plan, "[tool.poetry.dependencies] python '>=3.11,<4.0'")

    def test_uv_application_without_build_system_runs_from_source(self) -> None:
        plan = fixture_plan("uv_app")

        assert plan.install_project is False
        assert plan.python_version == "3.11"
        assert has_reason(plan, ".python-version says 3.11")

    def test_setup_py_with_computed_requirements(self) -> None:
        plan = fixture_plan("setuppy_lib")

        assert plan.dependencies_from_source is True
        assert plan.install_project is True
        assert plan.dependency_source == "setup.py"
        assert has_reason(plan, "install_requires is computed")
        assert has_reason(plan, "setup.py python_requires '>=3.8'")

    def test_conflicting_versions_are_reported(self) -> None:
        plan = fixture_plan("conflicting_versions")

        assert plan.python_version == "3.11"
        assert plan.warnings == [
            "conflict: .python-version says 3.13 but requires-python '>=3.9,<3.13' excludes "
            "it; building with 3.11, the closest allowed version (make them agree)"
        ]

    def test_monorepo_sub_folder(self) -> None:
        plan = fixture_plan("monorepo/services/api")

        assert plan.requirements == ["iniconfig==2.1.0"]
        assert plan.start_command == ["python", "app.py"]

    @pytest.mark.parametrize(
        ("fixture", "command", "kind", "server"),
        [
            ("fastapi_app", ["uvicorn", "--host", "0.0.0.0", "--port", "8000", "main:app"],
             "web", ["uvicorn>=0.20"]),
            ("flask_factory", ["gunicorn", "--bind", "0.0.0.0:8000", "flaskr:create_app()"],
             "web", ["gunicorn>=21.2"]),
            ("django_app", ["gunicorn", "--bind", "0.0.0.0:8000", "mysite.wsgi:application"],
             "web", ["gunicorn>=21.2"]),
            ("console_script", ["shout"], "cli", []),
            ("setuptools_pkg", ["python", "-m", "inicount"], "cli", []),
            ("hatch_pkg", ["python"], "none", []),
        ],
    )  # fmt: skip
    def test_start_commands(
        self, fixture: str, command: list[str], kind: str, server: list[str]
    ) -> None:
        plan = fixture_plan(fixture)

        assert plan.start_command == command
        assert plan.start_kind == kind
        assert plan.server_requirements == server
        assert all(requirement in plan.requirements for requirement in server)
        assert plan.port == (8000 if kind == "web" else None)

    def test_fastapi_reason_names_the_line(self) -> None:
        plan = fixture_plan("fastapi_app")

        assert has_reason(plan, "start: uvicorn main:app because main.py:3 creates FastAPI()")
        assert has_reason(plan, "uvicorn>=0.20 added (the start command needs uvicorn")

    def test_django_tests_use_its_runner(self) -> None:
        plan = fixture_plan("django_app")

        assert plan.test_command == "python manage.py test -v 2"
        assert plan.test_requirements == []


class TestManifests:
    def test_setup_py_literals_and_bound_names(self, tmp_path: Path) -> None:
        path = tmp_path / "setup.py"
        path.write_text(
            "import setuptools\n"
            "REQUIRES = ['a>=1'] + ['b']\n"
            "setuptools.setup(name='x', install_requires=REQUIRES,\n"
            "    extras_require={'test': ['pytest']}, python_requires='>=3.9',\n"
            "    entry_points={'console_scripts': ['x = x.cli:main']})\n"
        )

        call = read_setup_py(path)

        assert call is not None
        assert call.install_requires == ["a>=1", "b"]
        assert call.extras_require == {"test": ["pytest"]}
        assert call.python_requires == ">=3.9"
        assert call.console_scripts == {"x": "x.cli:main"}
        assert call.dynamic == []

    def test_setup_py_computed_values_are_dynamic(self, tmp_path: Path) -> None:
        path = tmp_path / "setup.py"
        path.write_text(
            "from setuptools import setup\n"
            "setup(install_requires=open('r.txt').read().split(), **extra)\n"
        )

        call = read_setup_py(path)

        assert call is not None
        assert call.install_requires is None
        assert call.dynamic == ["install_requires", "**kwargs"]

    def test_setup_cfg(self, tmp_path: Path) -> None:
        (tmp_path / "base.in").write_text("click\n")
        path = tmp_path / "setup.cfg"
        path.write_text(
            "[metadata]\nname = tool\n\n[options]\ninstall_requires =\n    requests>=2\n"
            "    file: base.in\npython_requires = >=3.10\n\n"
            "[options.extras_require]\ntesting = pytest\n\n"
            "[options.entry_points]\nconsole_scripts =\n    tool = tool.cli:run\n"
        )

        cfg = read_setup_cfg(path)

        assert cfg.name == "tool"
        assert cfg.install_requires == ["requests>=2", "file: base.in"]
        assert cfg.python_requires == ">=3.10"
        assert cfg.extras_require == {"testing": ["pytest"]}
        assert cfg.console_scripts == {"tool": "tool.cli:run"}

    def test_setup_cfg_file_directive(self, tmp_path: Path) -> None:
        (tmp_path / "base.in").write_text("click\n# comment\nrich>=13\n")
        path = tmp_path / "setup.cfg"
        path.write_text("[options]\ninstall_requires = file: base.in\n")

        assert read_setup_cfg(path).install_requires == ["click", "rich>=13"]

    @pytest.mark.parametrize(
        ("constraint", "expected"),
        [
            ("^1.2.3", ">=1.2.3,<2.0.0"),
            ("^0.2.3", ">=0.2.3,<0.3.0"),
            ("^0.0.3", ">=0.0.3,<0.0.4"),
            ("^3.10", ">=3.10,<4.0"),
            ("~1.2.3", ">=1.2.3,<1.3.0"),
            ("~1.2", ">=1.2,<1.3"),
            ("~1", ">=1,<2"),
            ("1.4", "==1.4"),
            ("1.4.*", "==1.4.*"),
            (">=1.2,<2", ">=1.2,<2"),
            (">= 1.2 < 2", ">=1.2,<2"),
            ("*", ""),
            ("^2.7 || ^3.6", None),
        ],
    )
    def test_poetry_constraints(self, constraint: str, expected: str | None) -> None:
        assert poetry_constraint(constraint) == expected

    def test_poetry_dependency_tables(self) -> None:
        converted = poetry_dependencies(
            {
                "python": "^3.10",
                "requests": {"version": "^2.31", "extras": ["socks"]},
                "tomli": {"version": "^2", "python": "<3.11"},
                "lib": {"git": "https://example.invalid/lib.git", "tag": "v1"},
                "optional-thing": {"version": "*", "optional": True},
                "local": {"path": "../local"},
            },
            where="test",
        )

        assert converted.requirements == [
            "requests[socks]>=2.31,<3.0",
            'tomli>=2,<3; python_version < "3.11"',
            "lib @ git+https://example.invalid/lib.git@v1",
        ]
        assert converted.local == ["local"]

    def test_pipfile_lock_markers_extras_and_vcs(self) -> None:
        lock = {
            "default": {
                "b": {"version": "==1.0", "hashes": ["sha256:aa"], "markers": "os_name == 'posix'"},
                "a": {"version": "==2.0", "extras": ["x"], "hashes": []},
                "c": {"git": "https://example.invalid/c.git", "ref": "abc"},
                "me": {"path": ".", "editable": True},
            }
        }

        converted = pipfile_lock_requirements(lock, "default")

        assert converted.requirements == [
            "a[x]==2.0",
            "b==1.0; os_name == 'posix' --hash=sha256:aa",
            "c @ git+https://example.invalid/c.git@abc",
        ]
        assert converted.local == ["me"]

    def test_stale_pipfile_lock_is_a_warning(self, tmp_path: Path) -> None:
        lock = (PROJECTS / "pipenv_app" / "Pipfile.lock").read_text()
        pipfile = (PROJECTS / "pipenv_app" / "Pipfile").read_text()
        plan = plan_for(
            tmp_path,
            {"Pipfile": pipfile.replace('"==2.1.0"', '"==2.0.0"'), "Pipfile.lock": lock},
        )

        assert plan.warnings == [
            "Pipfile.lock is out of date with Pipfile (its hash differs); the lock is installed "
            "as it is: run `pipenv lock`"
        ]

    def test_noxfile_test_session(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "noxfile.py": "import nox\n@nox.session\ndef tests(session):\n"
                "    session.install('pytest', 'hypothesis', '-e', '.')\n"
                "    session.run('pytest', '-q')\n",
                "tests/test_a.py": "",
            },
        )

        assert plan.test_requirements == ["pytest", "hypothesis"]
        assert plan.test_sources == ["noxfile.py session 'tests'"]


class TestDependencySources:
    def test_lock_wins_over_requirements_and_says_so(self, tmp_path: Path) -> None:
        lock = (PROJECTS / "uv_app" / "uv.lock").read_text()
        pyproject = (PROJECTS / "uv_app" / "pyproject.toml").read_text()
        plan = plan_for(
            tmp_path,
            {"pyproject.toml": pyproject, "uv.lock": lock, "requirements.txt": "flask\n"},
        )

        assert plan.lock_tool == "uv"
        assert plan.requirements == []
        assert has_reason(plan, "requirements.txt ignored (uv.lock is used)")

    def test_lock_without_its_manifest_is_ignored(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"poetry.lock": "", "requirements.txt": "flask\n"})

        assert plan.lock_tool is None
        assert plan.requirements == ["flask"]
        assert plan.warnings == [
            "poetry.lock ignored: no pyproject.toml or Pipfile that it belongs to"
        ]

    def test_poetry_without_lock_translates_constraints(self, tmp_path: Path) -> None:
        pyproject = (
            '[tool.poetry]\nname = "app"\nversion = "1"\n\n'
            '[tool.poetry.dependencies]\npython = "^3.10"\nrequests = "^2.31"\n\n'
            '[tool.poetry.group.test.dependencies]\npytest = "^8"\n\n'
            '[build-system]\nrequires = ["poetry-core"]\n'
            'build-backend = "poetry.core.masonry.api"\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_a.py": ""})

        assert plan.requirements == ["requests>=2.31,<3.0"]
        assert plan.test_requirements == ["pytest>=8,<9"]
        assert plan.install_project is True
        assert plan.python_version == "3.11"

    def test_pipfile_without_lock(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "Pipfile": '[packages]\nflask = "*"\nrequests = {version = ">=2", extras = '
                '["socks"]}\n\n[dev-packages]\npytest = "==8.0"\n',
                "tests/test_a.py": "",
            },
        )

        assert plan.requirements == ["flask", "requests[socks]>=2"]
        assert plan.test_requirements == ["pytest==8.0"]

    def test_setup_cfg_dependencies_and_test_extras(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "setup.cfg": "[metadata]\nname = tool\n\n[options]\ninstall_requires =\n"
                "    click\n\n[options.extras_require]\ntest = pytest-mock\n",
                "tests/test_a.py": "",
            },
        )

        assert plan.requirements == ["click"]
        assert plan.install_project is True
        assert plan.test_requirements == ["pytest-mock", "pytest"]
        assert has_reason(plan, "dependencies: setup.cfg:5 [options] install_requires")

    def test_pep_735_include_group(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "app"\nversion = "1"\n\n[dependency-groups]\n'
            'lint = ["ruff"]\nextra = ["freezegun"]\n'
            'test = ["pytest", {include-group = "lint"}, {include-group = "extra"}]\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_a.py": ""})

        assert plan.test_requirements == ["pytest", "freezegun"]
        assert has_reason(plan, "ruff left out (linters")

    def test_tox_deps_are_test_dependencies_when_nothing_else_says(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "tox.ini": "[testenv]\ndeps =\n    pytest\n    -rrequirements.txt\n"
                "    mock\ncommands = pytest {posargs}\n",
                "requirements.txt": "flask\n",
                "tests/test_a.py": "",
            },
        )

        # flask, from the included requirements.txt, is a runtime dependency already.
        assert plan.test_requirements == ["pytest", "mock"]
        assert has_reason(plan, "test dependencies: tox.ini [testenv] (runs the tests")


class TestTestRunner:
    UNITTEST = (
        "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass\n"
    )

    def test_unittest_only_tests_run_with_unittest(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"tests/test_a.py": self.UNITTEST, "lib.py": ""})

        assert plan.test_command == "python -m unittest discover -v -s tests"
        assert plan.test_requirements == []

    def test_package_tests_use_the_top_level_directory(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"tests/__init__.py": "", "tests/test_a.py": self.UNITTEST})

        assert plan.test_command == "python -m unittest discover -v -s tests -t ."

    def test_root_level_unittest_files(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"test_a.py": self.UNITTEST})

        assert plan.test_command == "python -m unittest discover -v"

    @pytest.mark.parametrize(
        "extra",
        [
            {"requirements-dev.txt": "pytest-cov\n"},
            {"conftest.py": ""},
            {"pytest.ini": "[pytest]\n"},
            {"tests/test_b.py": "import pytest\n"},
            {"tox.ini": "[testenv]\ncommands = pytest\n"},
            {"setup.cfg": "[tool:pytest]\naddopts = -q\n"},
        ],
    )
    def test_any_mention_of_pytest_keeps_pytest(
        self, tmp_path: Path, extra: dict[str, str]
    ) -> None:
        plan = plan_for(tmp_path, {"tests/test_a.py": self.UNITTEST, **extra})

        assert plan.test_command == "python -m pytest"

    def test_plain_test_functions_use_pytest(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"tests/test_a.py": "def test_a():\n    assert True\n"})

        assert plan.test_command == "python -m pytest"


class TestPythonVersions:
    def test_disagreeing_pins_are_a_warning(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {".python-version": "3.11\n", "runtime.txt": "python-3.13.0\n"})

        assert plan.python_version == "3.11"
        assert plan.warnings == [
            "conflicting Python versions: .python-version says 3.11, runtime.txt says 3.13"
        ]

    def test_unavailable_pin_uses_the_closest(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {".python-version": "3.12\n"})

        assert plan.python_version == "3.13"
        assert plan.warnings == [
            ".python-version says 3.12, which this builder does not have (3.9, 3.11, 3.13); "
            "building with 3.13, the closest allowed"
        ]

    def test_pin_within_constraints(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                ".python-version": "3.13\n",
                "pyproject.toml": '[project]\nrequires-python = ">=3.11"\n',
            },
        )

        assert plan.python_version == "3.13"
        assert plan.warnings == []

    def test_option_conflicting_with_the_project_is_a_warning(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"pyproject.toml": '[project]\nrequires-python = ">=3.11"\n'},
            requested_version="3.9",
        )

        assert plan.python_version == "3.9"
        assert plan.warnings == [
            "conflict: option python_version=3.9 but requires-python '>=3.11' excludes it"
        ]

    def test_constraints_that_exclude_each_other(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "a"\nrequires-python = ">=3.12"\n\n'
            '[tool.poetry.dependencies]\npython = "~3.9"\n'
        )
        with pytest.raises(DetectionError, match="allows none of the available"):
            plan_for(tmp_path, {"pyproject.toml": pyproject})


class TestStartCommandFromCode:
    def test_alias_imports_and_any_file_name(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"service/web_entry.py": "import fastapi as fa\n\napi = fa.FastAPI()\n"},
        )

        assert plan.start_command == [
            "uvicorn", "--host", "0.0.0.0", "--port", "8000", "service.web_entry:api",
        ]  # fmt: skip

    def test_src_layout_module_path(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "src/shop/app.py": (
                    "from starlette.applications import Starlette\napp = Starlette()\n"
                )
            },
        )

        assert plan.start_command is not None
        assert plan.start_command[-1] == "shop.app:app"

    def test_a_file_called_app_py_without_an_app_is_not_a_web_app(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"app.py": "print('hello')\n"})

        assert plan.start_command == ["python", "app.py"]
        assert plan.start_kind == "cli"

    def test_app_object_wins_over_its_factory(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "blog/__init__.py": "from flask import Flask\n\ndef create_app():\n"
                "    return Flask(__name__)\n",
                "wsgi.py": "from blog import create_app\n\napplication = create_app()\n",
            },
        )

        assert plan.start_command == ["gunicorn", "--bind", "0.0.0.0:8000", "wsgi:application"]
        assert has_reason(plan, "wsgi.py:3 creates Flask()")

    def test_factory_needing_arguments_is_not_used(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"web.py": "from flask import Flask\n\ndef make(config):\n    return Flask(config)\n"},
        )

        assert plan.start_kind != "web"

    def test_asgi_factory(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {"api.py": "from fastapi import FastAPI\n\ndef build():\n    return FastAPI()\n"},
        )

        assert plan.start_command == [
            "uvicorn", "--host", "0.0.0.0", "--port", "8000", "--factory", "api:build",
        ]  # fmt: skip

    def test_procfile_wins(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "Procfile": "release: ./migrate\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\n",
                "app.py": "from flask import Flask\napp = Flask(__name__)\n",
                "requirements.txt": "flask\ngunicorn\n",
            },
        )

        assert plan.start_command == [
            "/bin/sh", "-c", "exec gunicorn app:app --bind 0.0.0.0:$PORT",
        ]  # fmt: skip
        assert plan.server_requirements == []  # the project depends on gunicorn
        assert has_reason(plan, "Procfile:2 declares the web process")

    def test_django_asgi_application(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "manage.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', "
                "'site_cfg.settings')\n",
                "site_cfg/settings.py": "ASGI_APPLICATION = 'site_cfg.asgi.application'\n",
            },
        )

        assert plan.start_command == [
            "uvicorn", "--host", "0.0.0.0", "--port", "8000", "site_cfg.asgi:application",
        ]  # fmt: skip

    def test_web_app_preferred_over_console_scripts(self, tmp_path: Path) -> None:
        pyproject = (
            '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
            '[project]\nname = "svc"\nversion = "1"\ndependencies = ["uvicorn"]\n\n'
            '[project.scripts]\nsvc-admin = "svc.admin:main"\n'
        )
        plan = plan_for(
            tmp_path,
            {
                "pyproject.toml": pyproject,
                "svc/__init__.py": "",
                "svc/api.py": "from fastapi import FastAPI\napp = FastAPI()\n",
            },
        )

        assert plan.start_command is not None
        assert plan.start_command[-1] == "svc.api:app"
        assert plan.server_requirements == []
        assert has_reason(plan, "console scripts (svc-admin) not used")

    def test_package_with_main_module(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"tool/__init__.py": "", "tool/__main__.py": "print(1)\n"})

        assert plan.start_command == ["python", "-m", "tool"]
        assert plan.start_kind == "cli"

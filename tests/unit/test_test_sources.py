"""Test requirements named by the project's own automation (tox, nox) or by file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.detection.detect import DetectionError, detect
from core.detection.requirements import read_requirements
from core.detection.tox import expand_envlist
from core.dockerfile.render import BaseImages, render
from tests.unit.test_detect import has_reason, plan_for

TOX = """\
[tox]
envlist = docs, lint, py{310,311}-django{42,50}

[testenv]
deps =
    -r{toxinidir}/requirements/tests
    django42: Django>=4.2,<5
    django50: Django>=5.0,<5.1
    !py310: tomli-w  # not needed on 3.10
    py310,py312: exceptiongroup
extras = yaml
commands = pytest {posargs:tests}

[testenv:docs]
deps = -r docs/requirements.txt
commands = sphinx-build docs docs/_build

[testenv:lint]
deps = ruff
commands = ruff check .
"""
PYPROJECT = """\
[project]
name = "thing"
version = "1"
dependencies = ["attrs"]

[project.optional-dependencies]
yaml = ["pyyaml"]
"""


class TestTox:
    def test_the_environment_for_this_python_with_its_factors(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "tox.ini": TOX,
                "pyproject.toml": PYPROJECT,
                "requirements/tests": "pytest\nfreezegun\n",
                "docs/requirements.txt": "sphinx\n",
                "tests/test_a.py": "",
            },
        )

        assert plan.test_requirements == [
            "pyyaml",
            "pytest",
            "freezegun",
            "Django>=4.2,<5",
            "tomli-w",
        ]
        assert plan.test_sources == ["tox.ini env py311-django42", "requirements/tests"]
        assert has_reason(plan, "extra 'yaml' (tox.ini env py311-django42 installs it)")
        assert has_reason(plan, "docs/requirements.txt (not for the tests) ignored")

    def test_section_inherits_and_references_the_base(self, tmp_path: Path) -> None:
        tox = (
            "[testenv]\ndeps = pytest\ncommands = pytest\n"
            "[testenv:py311]\ndeps =\n    {[testenv]deps}\n    mock\n"
        )
        plan = plan_for(tmp_path, {"tox.ini": tox, "tests/test_a.py": ""})

        assert plan.test_requirements == ["pytest", "mock"]

    def test_envlist_braces(self) -> None:
        assert expand_envlist("py{39,311}-a, lint\n docs") == ["py39-a", "py311-a", "lint", "docs"]

    def test_expands_a_brace_with_one_choice(self) -> None:
        assert expand_envlist("py{310,311}-dj{41}") == ["py310-dj41", "py311-dj41"]

    def test_unknown_substitution_is_a_warning_not_a_failure(self, tmp_path: Path) -> None:
        tox = "[testenv]\ndeps =\n    pytest\n    {env:EXTRA_DEP}\ncommands = pytest\n"
        plan = plan_for(tmp_path, {"tox.ini": tox, "tests/test_a.py": ""})

        assert plan.test_requirements == ["pytest"]
        assert any("{env:EXTRA_DEP}" in warning for warning in plan.warnings)

    def test_a_line_that_is_no_requirement_is_left_out_with_a_warning(self, tmp_path: Path) -> None:
        tox = "[testenv]\ndeps =\n    pytest\n    pytest-xdist; ===\ncommands = pytest\n"
        plan = plan_for(tmp_path, {"tox.ini": tox, "tests/test_a.py": ""})

        assert plan.test_requirements == ["pytest"]
        assert any("is not a requirement this service can read" in w for w in plan.warnings)

    def test_tox_in_pyproject_native_toml(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "x"\nversion = "1"\n\n[tool.tox]\nenv_list = ["py311"]\n'
            '[tool.tox.env_run_base]\ndeps = ["pytest", "hypothesis"]\n'
            'commands = [["pytest", "{posargs}"]]\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_a.py": ""})

        assert plan.test_requirements == ["pytest", "hypothesis"]


class TestNox:
    def test_install_arguments_of_the_test_session(self, tmp_path: Path) -> None:
        noxfile = (
            "import nox\nDEPS = ['pytest', 'mock']\n\n"
            "@nox.session\ndef lint(session):\n    session.install('ruff')\n\n"
            "@nox.session(python=['3.11'])\ndef tests(session):\n"
            "    session.install(*DEPS)\n"
            "    session.install('-r', 'requirements/ci.in')\n"
            "    session.install('-e', '.[yaml]')\n    session.run('pytest')\n"
        )
        plan = plan_for(
            tmp_path,
            {
                "noxfile.py": noxfile,
                "pyproject.toml": PYPROJECT,
                "requirements/ci.in": "freezegun\n",
                "requirements-dev.txt": "black\nipdb\n",
                "tests/test_a.py": "",
            },
        )

        assert plan.test_requirements == ["pyyaml", "pytest", "mock", "freezegun"]
        assert has_reason(plan, "requirements-dev.txt (the noxfile.py session 'tests' does not")


class TestFiles:
    @pytest.mark.parametrize(
        "name",
        [
            "requirements/tests",
            "requirements/test.pip",
            "requirements/testing.in",
            "tests/requirements.txt",
            "requirements-test.txt",
            "test-requirements",
        ],
    )
    def test_any_suffix(self, tmp_path: Path, name: str) -> None:
        plan = plan_for(tmp_path, {name: "freezegun\n", "tests/test_a.py": ""})

        assert plan.test_requirements == ["freezegun", "pytest"]
        assert plan.test_sources == [name]

    def test_runtime_requirements_folder_without_suffixes(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "requirements/main": "attrs\n",
                "requirements/tests": "-r main\npytest\n",
                "tests/test_a.py": "",
            },
        )

        assert plan.requirements == ["attrs"]
        assert plan.dependency_source == "requirements/main"
        assert plan.test_requirements == ["pytest"]

    def test_test_specific_files_win_over_dev_ones(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "requirements-test.txt": "pytest\n",
                "requirements-dev.txt": "freezegun\n",
                "tests/test_a.py": "",
            },
        )

        assert plan.test_requirements == ["pytest"]


class TestRequirementLines:
    def test_tab_before_a_comment(self, tmp_path: Path) -> None:
        (tmp_path / "r.txt").write_text("attrs\t# why\nrich==13.0\t\t#x\n")

        assert read_requirements(tmp_path, "r.txt").lines == ["attrs", "rich==13.0"]

    def test_variable_in_an_include_says_what_to_write(self, tmp_path: Path) -> None:
        with pytest.raises(DetectionError, match=r"environment variable REQS"):
            plan_for(tmp_path, {"requirements.txt": "-r ${REQS}/base.txt\n"})


class TestPatchLevelPython:
    def test_patch_range_allows_its_minor_version_with_a_warning(self, tmp_path: Path) -> None:
        pyproject = '[project]\nname = "x"\nversion = "1"\nrequires-python = ">=3.11.4,<3.11.9"\n'
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject})

        assert plan.python_version == "3.11"
        assert any("allows only some 3.11.x releases" in w for w in plan.warnings)

    def test_a_lower_bound_on_an_older_minor_version_is_no_warning(self, tmp_path: Path) -> None:
        pyproject = '[project]\nname = "x"\nversion = "1"\nrequires-python = ">=3.8.1"\n'
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject})

        assert plan.python_version == "3.11"
        assert plan.warnings == []


class TestScmVersion:
    HATCH_VCS = (
        '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "x"\ndynamic = ["version"]\n[tool.hatch.version]\nsource = "vcs"\n'
    )

    def test_pkg_info_gives_the_version(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path, {"pyproject.toml": self.HATCH_VCS, "PKG-INFO": "Name: x\nVersion: 2.0.1\n"}
        )

        assert plan.build_environment == {"SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.1"}

    def test_without_pkg_info_the_fallback_is_a_warning(self, tmp_path: Path) -> None:
        pyproject = (
            '[build-system]\nrequires = ["pdm-backend"]\nbuild-backend = "pdm.backend"\n'
            '[project]\nname = "x"\ndynamic = ["version"]\n[tool.pdm.version]\nsource = "scm"\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject})

        assert plan.build_environment == {"PDM_BUILD_SCM_VERSION": "0.0.0"}
        assert any("neither .git nor PKG-INFO" in warning for warning in plan.warnings)

    def test_with_git_nothing_is_pretended(self, tmp_path: Path) -> None:
        plan = plan_for(tmp_path, {"pyproject.toml": self.HATCH_VCS, ".git/HEAD": "ref\n"})

        assert plan.build_environment == {}


class TestToxGroups:
    def test_native_toml_groups_and_dotted_python_factors(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "x"\nversion = "1"\n\n[dependency-groups]\n'
            'tests = ["pytest"]\ndev = ["ipdb", {include-group = "tests"}, "sphinx"]\n\n'
            '[tool.tox]\nenv_list = ["py3.14t", "py3.13", "py3.11", "docs"]\n'
            '[tool.tox.env_run_base]\ndependency_groups = ["tests"]\n'
            'commands = [["pytest", {replace = "posargs", default = [], extend = true}]]\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_a.py": ""})

        assert plan.test_requirements == ["pytest"]
        assert plan.test_sources == ["pyproject.toml env py3.11"]
        assert has_reason(plan, "group 'tests' (pyproject.toml env py3.11 installs it)")


class TestToxNames:
    def test_numeric_ranges_and_bare_versions(self) -> None:
        assert expand_envlist("py3{9-11}-tests") == ["py39-tests", "py310-tests", "py311-tests"]

    def test_bare_version_environment_is_this_pythons(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "x"\nversion = "1"\n\n[tool.tox]\n'
            'env_list = ["3.10", "3.11", "lint"]\n'
            '[tool.tox.env_run_base]\ndeps = ["pytest"]\ncommands = [["pytest"]]\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_a.py": ""})

        assert plan.test_sources == ["pyproject.toml env 3.11"]


class TestReusableDjangoApp:
    SETTINGS = "SECRET_KEY = 'x'\nINSTALLED_APPS = ['app']\n"
    TEST = "from django.test import SimpleTestCase\n\nclass T(SimpleTestCase):\n    pass\n"

    def test_settings_module_of_the_tests_gives_the_django_runner(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "app/__init__.py": "",
                "tests/__init__.py": "",
                "tests/settings.py": self.SETTINGS,
                "tests/test_views.py": self.TEST,
            },
        )

        assert plan.test_command == "python -m django test --settings=tests.settings -v 2"
        assert plan.test_runner == "django"
        assert plan.start_kind == "none"

    def test_pytest_suites_keep_pytest(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "tests/settings.py": self.SETTINGS,
                "tests/test_views.py": "import pytest\n",
            },
        )

        assert plan.test_runner == "pytest"


class TestUvLocalPackages:
    def test_members_and_path_dependencies_are_built_not_exported(self) -> None:
        root = Path(__file__).resolve().parent.parent / "projects" / "uv_workspace"
        plan = detect(root, available_versions=("3.11",), default_version="3.11")
        rendered = render(plan, BaseImages("b", "r"), build_id="b_1")

        assert plan.lock_local_packages == ["greeting", "shout"]
        assert plan.local_packages == ["packages/greeting", "libs/shout"]
        assert "--no-emit-package greeting --no-emit-package shout" in rendered.dockerfile

    def test_a_path_outside_the_upload_is_named(self, tmp_path: Path) -> None:
        lock = (
            'version = 1\n[[package]]\nname = "x"\nsource = { virtual = "." }\n'
            '[[package]]\nname = "lib"\nsource = { directory = "../lib" }\n'
        )
        plan = plan_for(
            tmp_path, {"pyproject.toml": '[project]\nname = "x"\nversion = "1"\n', "uv.lock": lock}
        )

        assert plan.local_packages == []
        assert any("'../lib', which is not in the upload" in w for w in plan.warnings)


class TestDefaultGroups:
    def test_all_means_every_group_but_docs_and_linters(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "x"\nversion = "1"\n\n[dependency-groups]\n'
            'unit = ["pytest"]\nextra-tests = ["freezegun"]\ndocs = ["sphinx-build-x"]\n'
            'lint = ["pylint-x"]\n\n[tool.uv]\ndefault-groups = "all"\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_a.py": ""})

        assert plan.test_requirements == ["pytest", "freezegun"]
        assert has_reason(plan, "groups docs, lint of [tool.uv] default-groups skipped")

    def test_a_list_names_the_groups(self, tmp_path: Path) -> None:
        pyproject = (
            '[project]\nname = "x"\nversion = "1"\n\n[dependency-groups]\n'
            'ci = ["pytest"]\ndev = ["ipython-x"]\n\n[tool.uv]\ndefault-groups = ["ci"]\n'
        )
        plan = plan_for(tmp_path, {"pyproject.toml": pyproject, "tests/test_a.py": ""})

        assert plan.test_requirements == ["pytest"]

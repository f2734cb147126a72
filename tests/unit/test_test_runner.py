"""The runner a project's automation uses, and pytest options whose plugin is missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.detection.pytest_config import PluginNeeds, plugin_needs, read_pytest_config
from core.detection.test_runner import automation_command, runner_of, with_environment
from tests.unit.test_detect import has_reason, plan_for


class TestRunnerOf:
    @pytest.mark.parametrize(
        ("command", "runner"),
        [
            ("python -m pytest", "pytest"),
            ("DJANGO_SETTINGS_MODULE=x python -m pytest -o 'addopts=-ra'", "pytest"),
            ("python manage.py test -v 2", "django"),
            ("python -m django test --settings=tests.settings", "django"),
            ("python -m unittest discover -v", "unittest"),
            ("python runtests.py", "custom"),
        ],
    )
    def test_runner(self, command: str, runner: str) -> None:
        assert runner_of(command) == runner


class TestAutomationCommand:
    def test_coverage_wrapped_unittest(self, tmp_path: Path) -> None:
        command = automation_command(tmp_path, ["coverage run -m unittest discover -s tests"])

        assert command is not None
        assert command[0] == "python -m unittest discover -v -s tests"

    def test_own_script_must_exist(self, tmp_path: Path) -> None:
        assert automation_command(tmp_path, ["python runtests.py --fast"]) is None
        (tmp_path / "runtests.py").write_text("")

        command = automation_command(tmp_path, ["coverage report", "python runtests.py --fast"])

        assert command is not None
        assert command[0] == "python runtests.py --fast"

    def test_pytest_is_the_default(self, tmp_path: Path) -> None:
        assert automation_command(tmp_path, ["pytest {posargs}"]) is None

    def test_django_gets_verbose_counts(self, tmp_path: Path) -> None:
        command = automation_command(tmp_path, ["django-admin test --settings=tests.settings"])

        assert command is not None
        assert command[0] == "python -m django test --settings=tests.settings -v 2"


class TestPluginNeeds:
    def needs(
        self, tmp_path: Path, ini: str, installed: set[str], declared: str = ""
    ) -> PluginNeeds:
        (tmp_path / "pytest.ini").write_text(ini)
        return plugin_needs(tmp_path, read_pytest_config(tmp_path), installed, declared)

    def test_undeclared_plugin_options_are_taken_out(self, tmp_path: Path) -> None:
        needs = self.needs(
            tmp_path,
            "[pytest]\naddopts = -ra --cov src --cov-report=term -n 4 --doctest-modules -p xdist\n",
            set(),
        )

        assert needs.addopts == ["-ra", "--doctest-modules"]
        assert needs.removed == {
            "pytest-cov": ["--cov src", "--cov-report=term"],
            "pytest-xdist": ["-n 4", "-p xdist"],
        }

    def test_installed_plugin_keeps_its_options(self, tmp_path: Path) -> None:
        needs = self.needs(tmp_path, "[pytest]\naddopts = --cov=src\n", {"pytest-cov"})

        assert needs.addopts is None
        assert needs.install == {}

    def test_plugin_declared_elsewhere_is_installed(self, tmp_path: Path) -> None:
        needs = self.needs(
            tmp_path, "[pytest]\naddopts = --timeout 30\n", set(), "pip install pytest_timeout\n"
        )

        assert list(needs.install) == ["pytest-timeout"]
        assert needs.addopts is None

    def test_settings_key_needs_pytest_django(self, tmp_path: Path) -> None:
        needs = self.needs(tmp_path, "[pytest]\nDJANGO_SETTINGS_MODULE = site.settings\n", set())

        assert list(needs.install) == ["pytest-django"]

    def test_local_plugin_module_is_no_distribution(self, tmp_path: Path) -> None:
        (tmp_path / "tests").mkdir()
        (tmp_path / "tests" / "plugin.py").write_text("")
        needs = self.needs(tmp_path, "[pytest]\naddopts = -p tests.plugin\n", set())

        assert needs.addopts is None


class TestPlans:
    def test_addopts_override_in_the_command_and_the_reason(self, tmp_path: Path) -> None:
        plan = plan_for(
            tmp_path,
            {
                "pyproject.toml": '[tool.pytest.ini_options]\naddopts = ["-ra", "--cov=app"]\n',
                "tests/test_a.py": "",
            },
        )

        assert plan.test_command == "python -m pytest -o addopts=-ra"
        assert plan.test_runner == "pytest"
        assert has_reason(plan, "--cov=app taken out of pyproject.toml addopts (pytest-cov is not")

    def test_tox_unittest_command_and_setenv(self, tmp_path: Path) -> None:
        tox = (
            "[testenv]\nsetenv =\n    PYTHONPATH = {toxinidir}/src\n"
            "commands = python -m unittest discover -s tests\n"
        )
        plan = plan_for(tmp_path, {"tox.ini": tox, "tests/test_a.py": "import pytest\n"})

        assert plan.test_command == "PYTHONPATH=./src python -m unittest discover -v -s tests"
        assert plan.test_runner == "unittest"
        assert "pytest" not in plan.test_requirements


class TestEnvironment:
    def test_pytest_addopts_extends_the_services_own(self) -> None:
        command = with_environment("python -m pytest", {"PYTEST_ADDOPTS": "-n 2", "X": "a b"})

        assert command == "PYTEST_ADDOPTS=\"${PYTEST_ADDOPTS:-} \"'-n 2' X='a b' python -m pytest"
        run = subprocess.run(
            # The child process sees the variables, as pytest would.
            [
                "sh",
                "-c",
                command.replace("python -m pytest", "sh -c 'echo \"$PYTEST_ADDOPTS|$X\"'"),
            ],
            env={"PYTEST_ADDOPTS": "--junitxml=r.xml", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert run.stdout.strip() == "--junitxml=r.xml -n 2|a b"

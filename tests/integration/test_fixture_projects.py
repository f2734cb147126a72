"""Every fixture style built, tested and boot-checked for real through the pipeline.

Each case names the fixture, the options it is submitted with, and what the plan and the result
must say. The BuildKit cache is shared, so after the first run most steps are cache hits; tagged
images are removed after each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from adapters.docker import DockerEngine
from core.settings import Settings
from core.status import BuildStatus
from tests.conftest import PROJECTS
from tests.integration.builder import Builder, builder_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

UVICORN = ["uvicorn", "--host", "0.0.0.0", "--port", "8000"]
GUNICORN = ["gunicorn", "--bind", "0.0.0.0:8000"]
PYTEST = "python -m pytest"


@dataclass(frozen=True)
class Case:
    fixture: str
    start: list[str]
    # passed, failed, errors, skipped
    counts: tuple[int, int, int, int]
    test_command: str = PYTEST
    runner: str = "pytest"
    python: str = "3.11"
    options: dict[str, Any] = field(default_factory=dict)
    dependency_source: str | None = None
    server: list[str] = field(default_factory=list)
    warning: str | None = None
    # The test environment and requirement files the plan names, when the case is about them.
    test_sources: list[str] | None = None
    # Extension modules and whether each was built.
    extensions: dict[str, bool] = field(default_factory=dict)
    # What the builder installed for the native code (plan.system_packages_result).
    system_packages: list[str] = field(default_factory=list)
    # Debian packages the runtime image holds for the libraries the compiled modules link.
    runtime_packages: str | None = None
    # The start of a reason the plan must give (with the reason also in the log).
    reason: str | None = None


CASES = [
    Case(
        "requirements_app",
        ["python", "main.py"],
        (2, 0, 0, 0),
        dependency_source="requirements.txt",
    ),
    Case("setuptools_pkg", ["python", "-m", "inicount"], (3, 0, 0, 0)),
    Case("hatch_pkg", ["python"], (2, 0, 0, 0)),
    Case("flit_pkg", ["python"], (2, 0, 0, 0)),
    Case("poetry_app", ["poetry-app"], (1, 0, 0, 0), dependency_source="poetry.lock"),
    Case("pdm_app", ["python"], (2, 0, 0, 0), dependency_source="pdm.lock"),
    Case("uv_app", ["python", "main.py"], (1, 0, 0, 0), dependency_source="uv.lock"),
    Case("pipenv_app", ["python", "app.py"], (2, 0, 0, 0), dependency_source="Pipfile.lock"),
    Case(
        "setuppy_lib",
        ["python"],
        (2, 0, 0, 1),
        test_command="python -m unittest discover -v -s tests -t .",
        runner="unittest",
        dependency_source="setup.py",
    ),
    Case("fastapi_app", [*UVICORN, "main:app"], (3, 0, 0, 0), server=["uvicorn>=0.20"]),
    Case(
        "flask_factory",
        [*GUNICORN, "flaskr:create_app()"],
        (2, 0, 0, 0),
        server=["gunicorn>=21.2"],
    ),
    Case(
        "django_app",
        [*GUNICORN, "mysite.wsgi:application"],
        (2, 0, 0, 0),
        test_command="python manage.py test -v 2",
        runner="django",
        server=["gunicorn>=21.2"],
    ),
    Case("c_extension", ["python"], (2, 0, 0, 0), extensions={"fastsum._speedups": True}),
    Case("console_script", ["shout"], (2, 0, 0, 0)),
    Case(
        "monorepo",
        ["python", "app.py"],
        (1, 0, 0, 0),
        options={"context_dir": "services/api"},
    ),
    Case(
        "conflicting_versions",
        ["python", "main.py"],
        (1, 0, 0, 0),
        warning="conflict: .python-version says 3.13 but requires-python '>=3.9,<3.13'",
    ),
    Case(
        "tox_requirements",
        ["python"],
        (2, 0, 0, 0),
        test_sources=["tox.ini env py311", "requirements/tests"],
        warning="tox.ini [testenv] deps: '{env:EXTRA_TEST_DEP}' left out",
    ),
    # pytest-timeout is declared only by the CI workflow (installed); pytest-cov nowhere (its
    # options are taken out). The doctest of slug.py is the third test.
    Case(
        "pytest_addopts",
        ["python"],
        (3, 0, 0, 0),
        test_command="python -m pytest -o 'addopts=-ra --timeout 60 --doctest-modules'",
    ),
    # tox runs the project's own script; load_tests adds a doctest only unittest collects.
    Case(
        "tox_runtests",
        ["python"],
        (3, 0, 0, 0),
        test_command="python runtests.py",
        runner="custom",
        test_sources=["tox.ini env py311"],
    ),
    # No manage.py: its tests run with Django's runner and the settings module they carry.
    Case(
        "django_reusable_app",
        ["python"],
        (2, 0, 0, 0),
        test_command="python -m django test --settings=tests.settings -v 2",
        runner="django",
    ),
    # An optional extension that does not compile: the build goes on, and says so.
    Case(
        "optional_extension",
        ["python"],
        (2, 0, 0, 0),
        warning="native extensions: quickcount._speedups was not built",
        extensions={"quickcount._speedups": False},
    ),
    # An optional extension linking libyaml: libyaml-dev in the builder (from libraries=["yaml"]),
    # libyaml's runtime package in the image, and the extension built.
    Case(
        "optional_native_library",
        ["python"],
        (1, 0, 0, 0),
        extensions={"yamlver._libyaml": True},
        system_packages=["installed libyaml-dev"],
        runtime_packages="libyaml-0-2",
    ),
    # Test requirements named only by the CI workflow's test job (a file, an extra); the
    # requirements-dev.txt beside it names a package that does not exist: it is not installed.
    Case(
        "ci_workflow",
        ["python"],
        (2, 0, 0, 0),
        test_sources=[".github/workflows/tests.yml job 'test'", "ci/test-deps.txt"],
    ),
    # pytest is declared, so it runs first, and collects nothing (unittest's testtitle.py):
    # unittest discovery, the fallback, runs the tests.
    Case(
        "unittest_fallback",
        ["python"],
        (2, 0, 0, 0),
        test_command="python -m unittest discover -v -s tests",
        runner="unittest",
        reason="tests: python -m unittest discover -v -s tests ran the tests: python -m pytest "
        "ran none (exit code 5)",
    ),
    # uv's default-groups "all": every group but the linters' (an include followed); a tab
    # before a requirement's comment; a patch-level requires-python.
    Case(
        "uv_default_groups",
        ["python", "app.py"],
        (2, 0, 0, 0),
        warning="requires-python '>=3.11.1,<3.11.99' allows only some 3.11.x releases",
        reason="test dependencies: groups lint of [tool.uv] default-groups skipped",
    ),
    # A workspace member and a path dependency: built from the source, not exported.
    Case("uv_workspace", ["python", "main.py"], (2, 0, 0, 0), dependency_source="uv.lock"),
    # hatch-vcs without .git: the version PKG-INFO records (the tests check it).
    Case("scm_version", ["python"], (2, 0, 0, 0)),
]


@pytest.fixture
def builder(
    settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
) -> Iterator[Builder]:
    yield from builder_for(settings, sqlite_engine, docker_engine)


class TestFixtureProjects:
    @pytest.mark.parametrize("case", CASES, ids=[case.fixture for case in CASES])
    def test_builds_tests_and_boots(self, builder: Builder, case: Case) -> None:
        build_id = builder.submit(case.fixture, **case.options)
        outcome = builder.run(build_id)
        build = outcome.build

        assert build.status is BuildStatus.SUCCEEDED, outcome.log
        plan = build.plan
        assert plan is not None
        assert plan["python_version"] == case.python
        assert plan["start_command"] == case.start
        assert plan["test_command"] == case.test_command
        assert plan["server_requirements"] == case.server
        if case.dependency_source is not None:
            assert plan["dependency_source"] == case.dependency_source
        assert plan["extensions_built"] == case.extensions
        assert plan["system_packages_result"] == case.system_packages
        if case.runtime_packages is not None:
            assert f"native libraries: from Debian packages {case.runtime_packages}" in outcome.log
        if case.extensions:
            assert plan["extension_modules"] == list(case.extensions)
        if case.test_sources is not None:
            assert plan["test_sources"] == case.test_sources
        if case.reason is not None:
            reason = next((r for r in plan["reasons"] if r.startswith(case.reason)), None)
            assert reason is not None, plan["reasons"]
            assert reason in outcome.log
        if case.warning is not None:
            assert any(case.warning in warning for warning in plan["warnings"]), plan["warnings"]
            assert f"warning: {case.warning}" in outcome.log
        assert build.tests is not None
        assert plan["test_runner"] == build.tests["runner"] == case.runner
        counts = (
            build.tests["passed"],
            build.tests["failed"],
            build.tests["errors"],
            build.tests["skipped"],
        )
        assert counts == case.counts, outcome.log
        assert "native libraries: every shared object finds its libraries" in outcome.log
        if plan["start_kind"] == "web":
            assert "boot check: HTTP " in outcome.log, outcome.log
        elif plan["start_kind"] == "cli":
            assert "boot check: passed" in outcome.log, outcome.log

        info = builder.docker.image_info(build.image_id or "")
        config = info["Config"]
        assert config["User"] == "10001:10001"
        assert config["Labels"]["imagebuilder.build-id"] == build_id
        assert config["Labels"]["imagebuilder.source.sha256"] == build.source_sha256
        assert "org.opencontainers.image.created" in config["Labels"]
        assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
        if plan["start_kind"] == "web":
            assert config["ExposedPorts"] == {"8000/tcp": {}}
            assert config["Healthcheck"]["Test"][0] == "CMD"
        assert builder.containers_of(build_id) == 0


class TestProjectFaultsAfterTheTests:
    def test_missing_native_library_is_named(self, builder: Builder) -> None:
        # Its own Dockerfile compiles the module in one stage and leaves the library it links
        # out of the final one (a generated Dockerfile installs it: see optional_native_library).
        settings = builder.settings
        outcome = builder.run(
            builder.submit(
                "native_missing",
                build_args={
                    "BUILDER": settings.builder_image("3.11"),
                    "BASE": settings.runtime_image("3.11"),
                },
                test_command="python3 -m unittest discover -s tests -v",
            )
        )

        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "missing_native_library"
        assert (outcome.build.error_message or "").startswith("libmpfr.so.6 is missing")
        assert "_mpfr" in (outcome.build.error_message or "")
        assert outcome.build.tests is not None  # the tests ran and passed first
        assert outcome.build.image_id is None

    def test_declared_start_that_cannot_start_is_boot_failed(self, builder: Builder) -> None:
        outcome = builder.run(builder.submit("boot_crash_procfile"))

        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "boot_failed"
        message = outcome.build.error_message or ""
        assert "exec python main.py must answer HTTP on port 8000" in message
        assert "the settings file settings.ini is missing" in outcome.log

    def test_suite_that_stops_before_any_test_says_what_to_add(self, builder: Builder) -> None:
        outcome = builder.run(builder.submit("pytest_usage_error"))

        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "tests_not_collected"
        message = outcome.build.error_message or ""
        assert message.startswith("The test command (pytest) exited with 4 before any test ran")
        assert "give the option test_command" in message
        assert outcome.build.tests is not None
        assert outcome.build.tests["runner"] == "pytest"

    def test_extension_whose_library_has_no_package_is_reported_not_built(
        self, builder: Builder
    ) -> None:
        # optional_native_library with a library name that no Debian package provides: nothing
        # to install, the extension falls back to pure Python, and both are warnings.
        root = PROJECTS / "optional_native_library"
        files = {
            path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
        assert 'libraries=["yaml"]' in files["setup.py"]
        files["setup.py"] = files["setup.py"].replace(
            'libraries=["yaml"]', 'libraries=["imagebuilderabsent"]'
        )
        outcome = builder.run(builder.submit_files(files, owner="tester"))

        assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
        plan = outcome.build.plan or {}
        group = "libimagebuilderabsent-dev|imagebuilderabsent-dev"
        assert plan["system_packages"] == [group]
        assert plan["system_packages_result"] == [f"none {group}"]
        assert plan["extensions_built"] == {"yamlver._libyaml": False}
        missing = next(w for w in plan["warnings"] if w.startswith("system packages:"))
        assert missing.startswith(
            "system packages: no Debian package for libimagebuilderabsent-dev or "
            "imagebuilderabsent-dev"
        )
        assert f"warning: {missing}" in outcome.log
        assert "warning: native extensions: yamlver._libyaml was not built" in outcome.log
        assert outcome.build.tests is not None
        assert outcome.build.tests["passed"] == 1

    def test_variable_in_a_requirement_include_says_what_to_write(self, builder: Builder) -> None:
        files = {"requirements.txt": "-r ${REQS}/base.txt\n", "app.py": "print('hi')\n"}
        outcome = builder.run(builder.submit_files(files, owner="tester"))

        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "project_invalid"
        assert "names the environment variable REQS" in (outcome.build.error_message or "")
        assert "docker build" not in outcome.log

    def test_a_test_module_importing_what_is_not_installed_names_it(self, builder: Builder) -> None:
        files = {
            "requirements-test.txt": "pytest\n",
            "tests/test_a.py": "def test_a():\n    assert True\n",
            "tests/test_b.py": "import imagebuilder_absent_module\n\n\ndef test_b():\n    pass\n",
        }
        outcome = builder.run(builder.submit_files(files, owner="tester"))

        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "tests_not_collected"
        message = outcome.build.error_message or ""
        assert "the tests import imagebuilder_absent_module, which is not installed" in message

    def test_tests_that_need_a_service_say_so(self, builder: Builder) -> None:
        # As a suite whose every test needs a PostgreSQL server: the sandbox has none.
        files = {
            "requirements-test.txt": "pytest\n",
            "tests/test_db.py": "import socket\n\n\n"
            "def test_query():\n"
            "    socket.create_connection(('127.0.0.1', 5432), timeout=5).close()\n",
        }
        outcome = builder.run(builder.submit_files(files, owner="tester"))

        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "tests_failed"
        message = outcome.build.error_message or ""
        assert message.startswith("Tests failed: 1 failed. No test passed, and the output shows")
        assert "Connection refused" in message
        assert "the tests run without network or services" in message

    def test_guessed_start_that_cannot_start_is_a_warning(self, builder: Builder) -> None:
        outcome = builder.run(builder.submit("boot_crash"))

        assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
        plan = outcome.build.plan or {}
        assert plan["start_declared"] is False
        warning = next(w for w in plan["warnings"] if w.startswith("boot check:"))
        assert "python main.py --help must exit 0" in warning
        assert "the settings file settings.ini is missing" in warning
        assert f"warning: {warning}" in outcome.log


class TestOwnDockerfile:
    def test_findings_are_in_the_plan_and_the_log(self, builder: Builder) -> None:
        outcome = builder.run(builder.submit("linted_dockerfile", run_tests=False))

        assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
        plan = outcome.build.plan
        assert plan is not None
        rules = {finding["rule"] for finding in plan["dockerfile_findings"]}
        assert rules == {"IB002", "IB005"}
        assert "dockerfile: Dockerfile line 4: IB005 ADD hello.py" in outcome.log
        assert "boot check: skipped (the project's own Dockerfile" in outcome.log

    def test_remote_frontend_is_refused_before_building(self, builder: Builder) -> None:
        outcome = builder.run(builder.submit("frontend_dockerfile"))

        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "dockerfile_invalid"
        assert "docker/dockerfile:1.7" in (outcome.build.error_message or "")
        assert "docker build" not in outcome.log

    def test_frontend_build_argument_is_refused(self, builder: Builder) -> None:
        # Refused with the other options, before anything is stored.
        with pytest.raises(ValidationError, match="BUILDKIT_"):
            builder.submit("passing", build_args={"BUILDKIT_SYNTAX": "evil/frontend:1"})

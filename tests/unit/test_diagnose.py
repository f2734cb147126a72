"""core.results.diagnose: real BuildKit plain-progress outputs mapped to the failure codes of
API.md.

Every sample is verbatim output of `DOCKER_BUILDKIT=1 docker build --progress=plain` (Docker
20.10, built-in BuildKit) as the worker sees it, one list item per line.
"""

from __future__ import annotations

import pytest

from core.results.diagnose import (
    classify_build_failure,
    error_lines,
    failed_step,
    strip_step_prefix,
)

# A generated Dockerfile whose `deps` stage cannot install a requirement.
DEPENDENCY_FAILURE = """\
#11 [deps 4/4] RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked --mount=type=secret,id=ca_bundle if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; pip install -r /tmp/imagebuilder/requirements.txt
#11 1.109 ERROR: Could not find a version that satisfies the requirement imagebuilder-no-such-package-for-tests==9.9.9 (from versions: none)
#11 1.109 ERROR: No matching distribution found for imagebuilder-no-such-package-for-tests==9.9.9
#11 ERROR: executor failed running [/bin/sh -c if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; pip install -r /tmp/imagebuilder/requirements.txt]: exit code: 1
------
 > [deps 4/4] RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked --mount=type=secret,id=ca_bundle if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; pip install -r /tmp/imagebuilder/requirements.txt:
------
executor failed running [/bin/sh -c if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; pip install -r /tmp/imagebuilder/requirements.txt]: exit code: 1
""".splitlines()  # noqa: E501

# FROM imagebuilder/python:3.11 / FOOBAR x
UNKNOWN_INSTRUCTION = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:2c2dc1c22f4ca21efbdd30f31c416ec90902c37970a3a073e0064c64149307b7
#1 transferring dockerfile: 76B done
#1 DONE 0.0s

#2 [internal] load .dockerignore
#2 sha256:4954a5048181b088f8bc0323907a62b8bad5bed581ff509018f15e167fdf2dad
#2 transferring context: 2B done
#2 DONE 0.0s
failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: unknown instruction: FOOBAR
""".splitlines()  # noqa: E501

# FROM no-such-image-anywhere:1 / RUN true, with no registry reachable.
MISSING_BASE_IMAGE = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:05b794511ddde174aa2584748f68bc0b90c427930653816683c0b7d97813bf7f
#1 transferring dockerfile: 76B done
#1 DONE 0.0s

#2 [internal] load .dockerignore
#2 sha256:929d96ae63470fd6e46c0e42678fbb9bda40fbdd88b8f89372db03c342083787
#2 transferring context: 2B done
#2 DONE 0.0s

#3 [internal] load metadata for docker.io/library/no-such-image-anywhere:1
#3 sha256:45eddf5780df41f2a157869e5c90c5c68b3056855893508f755b66e3ee1989ff
#3 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/library/no-such-image-anywhere/manifests/1": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host
------
 > [internal] load metadata for docker.io/library/no-such-image-anywhere:1:
------
failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to do request: Head "https://registry-1.docker.io/v2/library/no-such-image-anywhere/manifests/1": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host
""".splitlines()  # noqa: E501

# FROM imagebuilder/python:3.11 / RUN false: a failing step in an unnamed stage.
RUN_FALSE = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:2fa8e14cd0cff6782dbd9536dff2ef814d839578c17ad7716cec29a91fb3ed25
#1 transferring dockerfile: 77B done
#1 DONE 0.0s

#2 [internal] load .dockerignore
#2 sha256:9983d0354b061be0e8ecf7d8ff03f171b05ba77b361c15b846870716814a41c0
#2 transferring context: 2B done
#2 DONE 0.0s

#3 [internal] load metadata for docker.io/imagebuilder/python:3.11
#3 sha256:dac28708a7c74c170df309697e596c48d812176ee9c18f3416ce99a5ee01e684
#3 DONE 0.0s

#4 [1/2] FROM docker.io/imagebuilder/python:3.11
#4 sha256:15b5b1f90e5c05dc67eb987c9f9aa3839147a880f93bb861c2ae8a2145df2422
#4 CACHED

#5 [2/2] RUN false
#5 sha256:209958b3ba703d4116a69ce9357719978336e499154d42804340bce7e82af340
#5 ERROR: executor failed running [/bin/sh -c false]: exit code: 1
------
 > [2/2] RUN false:
------
executor failed running [/bin/sh -c false]: exit code: 1
""".splitlines()

PIP_INSTALL = (
    "RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked"
    " --mount=type=secret,id=ca_bundle if [ -s /run/secrets/ca_bundle ];"
    " then export PIP_CERT=/run/secrets/ca_bundle; fi;"
    " pip install -r /tmp/imagebuilder/requirements.txt"
)
NO_MATCHING = (
    "ERROR: No matching distribution found for imagebuilder-no-such-package-for-tests==9.9.9"
)


def in_stage(lines: list[str], stage: str) -> list[str]:
    """The dependency failure as if it had happened in another stage of the generated file."""
    return [line.replace("[deps 4/4]", f"[{stage} 4/4]") for line in lines]


class TestClassifyBuildFailure:
    def test_dependency_stage_of_a_generated_dockerfile(self) -> None:
        failure = classify_build_failure(DEPENDENCY_FAILURE, generated=True)

        assert failure.code == "dependency_install_failed"
        assert failure.message == f"Installing the dependencies failed: {NO_MATCHING}"

    def test_test_dependency_stage_of_a_generated_dockerfile(self) -> None:
        failure = classify_build_failure(in_stage(DEPENDENCY_FAILURE, "test-deps"), generated=True)

        assert failure.code == "dependency_install_failed"

    def test_same_failure_in_the_projects_own_dockerfile_is_a_build_failure(self) -> None:
        failure = classify_build_failure(DEPENDENCY_FAILURE, generated=False)

        assert failure.code == "build_failed"
        assert failure.message == f"The image build failed at {PIP_INSTALL}: {NO_MATCHING}"

    def test_failure_in_the_source_stage_is_a_build_failure(self) -> None:
        failure = classify_build_failure(in_stage(DEPENDENCY_FAILURE, "source"), generated=True)

        assert failure.code == "build_failed"
        assert NO_MATCHING in failure.message

    def test_unknown_instruction_is_an_invalid_dockerfile(self) -> None:
        failure = classify_build_failure(UNKNOWN_INSTRUCTION, generated=False)

        assert failure.code == "dockerfile_invalid"
        assert failure.message.startswith("The Dockerfile is invalid: ")
        assert "dockerfile parse error line 2: unknown instruction: FOOBAR" in failure.message

    def test_unresolvable_base_image_is_unavailable_not_an_invalid_dockerfile(self) -> None:
        # BuildKit wraps it in "failed to create LLB definition", like a parse error.
        failure = classify_build_failure(MISSING_BASE_IMAGE, generated=False)

        assert failure.code == "base_image_unavailable"
        assert "could not be found or pulled" in failure.message

    @pytest.mark.parametrize("generated", [True, False])
    def test_failing_run_in_an_unnamed_stage_is_a_build_failure(self, generated: bool) -> None:
        failure = classify_build_failure(RUN_FALSE, generated=generated)

        assert failure.code == "build_failed"
        assert failure.message == "The image build failed at RUN false"

    def test_output_without_a_step_summary_is_a_build_failure(self) -> None:
        failure = classify_build_failure(["something went wrong"], generated=True)

        assert failure.code == "build_failed"
        assert failure.message == "The image build failed"


class TestFailedStep:
    def test_names_the_stage_and_instruction(self) -> None:
        assert failed_step(DEPENDENCY_FAILURE) == ("deps", PIP_INSTALL)

    def test_unnamed_stage_has_no_name(self) -> None:
        assert failed_step(RUN_FALSE) == (None, "RUN false")

    def test_internal_steps_are_not_build_steps(self) -> None:
        assert failed_step(MISSING_BASE_IMAGE) is None


class TestErrorLines:
    def test_keeps_the_tools_errors_without_buildkit_noise(self) -> None:
        assert error_lines(DEPENDENCY_FAILURE) == [
            "ERROR: Could not find a version that satisfies the requirement "
            "imagebuilder-no-such-package-for-tests==9.9.9 (from versions: none)",
            NO_MATCHING,
        ]

    def test_only_executor_noise_means_no_error_lines(self) -> None:
        assert error_lines(RUN_FALSE) == []

    def test_keeps_the_last_lines_up_to_the_limit(self) -> None:
        lines = [f"#7 0.{n}01 error: step {n}" for n in range(8)]

        assert error_lines(lines, limit=2) == ["error: step 6", "error: step 7"]

    @pytest.mark.parametrize(
        "line",
        [
            "#9 2.301 E: Unable to locate package libfoo-dev",
            "#9 2.301 ModuleNotFoundError: No module named 'setuptools'",
            "#9 2.301 src/ext.c:3:1: error: unknown type name 'foo'",
        ],
    )
    def test_recognises_common_tool_errors(self, line: str) -> None:
        assert error_lines([line]) == [strip_step_prefix(line).strip()]


class TestStripStepPrefix:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("#11 1.109 ERROR: boom", "ERROR: boom"),
            ("#11 ERROR: executor failed", "ERROR: executor failed"),
            ("#3 DONE 0.0s", "DONE 0.0s"),
            (" > [deps 4/4] RUN x:", " > [deps 4/4] RUN x:"),
            ("plain text", "plain text"),
        ],
    )
    def test_removes_only_the_step_and_time(self, line: str, expected: str) -> None:
        assert strip_step_prefix(line) == expected


# uv (the generated Dockerfile's installer) explains a resolution failure on a "cause:" line.
UV_DEPENDENCY_FAILURE = """\
#12 [deps 5/5] RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle SSL_CERT_FILE=/run/secrets/ca_bundle; fi; uv pip install -r /tmp/imagebuilder/requirements.txt
#12 0.467 Using Python 3.11.2 environment at: /opt/venv
#12 0.627 error: No solution found when resolving dependencies
#12 0.627   cause: Because imagebuilder-no-such-package-for-tests was not found in the package registry and you require imagebuilder-no-such-package-for-tests==9.9.9, we can conclude that your requirements are unsatisfiable.
#12 ERROR: executor failed running [/bin/sh -c uv pip install -r /tmp/imagebuilder/requirements.txt]: exit code: 1
------
 > [deps 5/5] RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle SSL_CERT_FILE=/run/secrets/ca_bundle; fi; uv pip install -r /tmp/imagebuilder/requirements.txt:
------
""".splitlines()  # noqa: E501


class TestUvOutput:
    def test_uv_resolution_failure_names_the_package(self) -> None:
        failure = classify_build_failure(UV_DEPENDENCY_FAILURE, generated=True)

        assert failure.code == "dependency_install_failed"
        assert "imagebuilder-no-such-package-for-tests was not found" in failure.message

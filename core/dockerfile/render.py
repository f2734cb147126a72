"""Render the Dockerfile (and the dependency files it copies) for a project without one.

Stages, each cached on its own inputs:

    tools        builder base + uv (and poetry or pdm when the lock needs it) in /opt/imagebuilder.
                 Shared by every build on the daemon; never copied into an image.
    deps         a virtual environment with the runtime dependencies. Its only inputs are the
                 generated requirement files and the lock (pyproject.toml + uv.lock, ...), so a
                 source-only change never reinstalls them.
    wheel        the project built as a wheel (extensions compiled here, where the compilers
                 are), checked to compile strictly: the code that gets installed must be valid.
    source-deps  only when the dependencies are known by building (setup.py, dynamic metadata):
                 those the wheel declares. Keyed by that list's content, so a source change that
                 keeps the list reuses the layer.
    source       the project's files, compiled to bytecode leniently: a file that does not
                 compile (a Python 2 script in tools/) stays source and fails only if imported.
    test-deps    the dependencies plus the test dependencies
    native       only for native code: the Debian packages owning the libraries the compiled
                 modules link (the development packages go into `tools`, core/detection/native.py)
    runtime      slim base + the venv + the wheel installed + the source, non-root: the image
                 that is tagged. No compilers, no tools, no caches.
    test         runtime + the test dependencies: where the tests run

Package downloads trust an optional CA bundle and use the owner's package indexes (URLs and a
netrc), mounted as BuildKit secrets in the install steps only, so they never land in a layer;
uv's and pip's caches are BuildKit cache mounts shared by one owner's builds (`cache_id`).
Labels that change with every build (created, build id, source digest) are passed on the command
line, so they neither break the cache nor the golden files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from core.access.package_indexes import ENV_SECRET_ID, NETRC_SECRET_ID
from core.detection.detect import Plan
from core.detection.native import RUNTIME_INSTALL, RUNTIME_PACKAGES_SCRIPT, install_script

GENERATED_DIR = ".imagebuilder"
APP_UID = 10001
CA_SECRET_ID = "ca_bundle"
FRESH_ARG = "IMAGEBUILDER_FRESH"
TOOLS_DIR = "/opt/imagebuilder"
UV = "uv==0.13.9"
LOCK_TOOLS = {
    "poetry": ("poetry==2.5.1", "poetry-plugin-export==1.10.1"),
    # hishel 2 removed an API pdm 2.29 uses (pdm declares no upper bound).
    "pdm": ("pdm==2.29.4", "hishel==1.4.0"),
}

# Mounted in the steps that install, and only there: the CA bundle, the package indexes' netrc
# (credentials) and their URLs (core.access.package_indexes). A secret the build does not get is an
# empty mount point; nothing of them lands in a layer, the image history or the log.
_INSTALL_SECRETS = (
    f"--mount=type=secret,id={CA_SECRET_ID}"
    f" --mount=type=secret,id={NETRC_SECRET_ID} --mount=type=secret,id={ENV_SECRET_ID}"
    f" if [ -s /run/secrets/{CA_SECRET_ID} ]; then"
    f" export PIP_CERT=/run/secrets/{CA_SECRET_ID} SSL_CERT_FILE=/run/secrets/{CA_SECRET_ID}; fi;"
    f" if [ -s /run/secrets/{ENV_SECRET_ID} ]; then . /run/secrets/{ENV_SECRET_ID}; fi;"
)
_PIP_CACHE = "--mount=type=cache,target=/root/.cache/pip,sharing=locked"
_UV_CACHE = "--mount=type=cache,target=/root/.cache/uv"
# Unpacks the built wheel(s) and compiles every module strictly; prints the culprit on failure.
_STRICT_COMPILE = (
    'for wheel in /wheels/*.whl; do python3 -m zipfile -e "$wheel" /tmp/wheel-check; done'
    " && python3 -m compileall -q /tmp/wheel-check && rm -rf /tmp/wheel-check"
)
# The Requires-Dist of the built wheels (extras left out, and the wheels themselves).
_WHEEL_REQUIREMENTS = (
    'python3 -c "import email.parser as p, glob, re, zipfile;'
    " n = lambda s: re.sub('[-_.]+', '-', s).lower();"
    " ms = [p.BytesParser().parsebytes(z.read(next(f for f in z.namelist()"
    " if f.endswith('.dist-info/METADATA'))))"
    " for z in map(zipfile.ZipFile, sorted(glob.glob('/wheels/*.whl')))];"
    " own = {n(m['Name']) for m in ms};"
    " reqs = {r for m in ms for r in m.get_all('Requires-Dist') or []"
    " if 'extra' not in r.partition(';')[2]"
    " and n(re.split('[^A-Za-z0-9._-]', r, maxsplit=1)[0]) not in own};"
    ' print(*sorted(reqs), sep=chr(10))" > /meta/requirements.txt'
)
_HEALTHCHECK_PROBE = (
    "import urllib.request as r, urllib.error as e\n"
    "try: r.urlopen('http://127.0.0.1:{port}/', timeout=4)\n"
    "except e.HTTPError: pass"
)


@dataclass(frozen=True)
class BaseImages:
    builder: str
    runtime: str


@dataclass(frozen=True)
class RenderedBuild:
    dockerfile: str
    # Files to write under the build context, relative to it.
    files: dict[str, str]
    # A .dockerignore for the context root, when the project has none.
    dockerignore: str | None = None


def _requirements_file(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _run(*mounts: str, command: str, installs: bool = False) -> str:
    parts = ["RUN", *mounts]
    if installs:
        parts.append(_INSTALL_SECRETS)
    parts.append(command)
    return " ".join(parts)


def _uv(command: str) -> str:
    return _run(_UV_CACHE, command=command, installs=True)


def healthcheck_probe(port: int) -> str:
    """Python code that exits 0 when something answers HTTP on `port` (any status)."""
    return _HEALTHCHECK_PROBE.format(port=port)


def render(
    plan: Plan, bases: BaseImages, *, build_id: str, cache_id: str | None = None
) -> RenderedBuild:
    """The generated Dockerfile for `plan`, and the files it expects in the context.

    `cache_id` gives the download caches a namespace of their own: the owner's cache scope in
    every build (caches are shared only among one owner's builds), a fresh one for the
    benchmark's cold builds."""
    files = {
        f"{GENERATED_DIR}/requirements.txt": _requirements_file(plan.requirements),
        f"{GENERATED_DIR}/constraints.txt": _requirements_file(plan.constraints),
        f"{GENERATED_DIR}/requirements-test.txt": _requirements_file(plan.test_requirements),
    }
    if plan.locked_requirements or plan.locked_test_requirements:
        files[f"{GENERATED_DIR}/locked.txt"] = _requirements_file(plan.locked_requirements)
        files[f"{GENERATED_DIR}/locked-test.txt"] = _requirements_file(
            plan.locked_test_requirements
        )
    constraints = " -c /tmp/imagebuilder/constraints.txt" if plan.constraints else ""
    needs_tools = bool(
        plan.requirements
        or plan.test_requirements
        or plan.locked_requirements
        or plan.locked_test_requirements
        or plan.lock_tool
        or plan.install_project
        or plan.local_packages
    )
    builds_wheels = plan.install_project or bool(plan.local_packages)
    lines = [f"# Generated by imagebuilder for build {build_id}."]
    if needs_tools:
        lines += _tools_stage(plan, bases)
    lines += _deps_stage(plan, bases, needs_tools, constraints)
    venv_stage = "deps"
    if builds_wheels:
        lines += _wheel_stage(plan)
        if plan.dependencies_from_source:
            venv_stage = "source-deps"
            lines += [
                "",
                "# Stage source-deps: what the built wheel declares, keyed by that list's content.",
                "FROM deps AS source-deps",
                "COPY --from=wheel /meta/requirements.txt /tmp/imagebuilder/wheel-requirements.txt",
                _uv(f"uv pip install -r /tmp/imagebuilder/wheel-requirements.txt{constraints}"),
            ]
    lines += [
        "",
        "# Stage source: the project's files, compiled to bytecode where they compile.",
        f"FROM {bases.builder} AS source",
        "WORKDIR /src",
        "COPY . .",
        f"RUN rm -rf {GENERATED_DIR} && python3 -m compileall -q . "
        "|| echo 'imagebuilder: the files above do not compile; they stay source'",
    ]
    lines += _test_deps_stage(plan, venv_stage, constraints)
    native = needs_tools and bool(plan.system_packages or plan.extension_modules)
    if native:
        lines += [
            "",
            "# Stage native: the Debian packages of the libraries the compiled modules link.",
            f"FROM {venv_stage} AS native",
            f"COPY {GENERATED_DIR}/runtime_packages.py /tmp/imagebuilder/",
            "RUN"
            + (
                " --mount=type=bind,from=wheel,source=/wheels,target=/wheels"
                if builds_wheels
                else ""
            )
            + " python3 /tmp/imagebuilder/runtime_packages.py",
        ]
        files[f"{GENERATED_DIR}/runtime_packages.py"] = RUNTIME_PACKAGES_SCRIPT
    lines += _runtime_stage(plan, bases, venv_stage, builds_wheels, native)
    lines += [
        "",
        "# Stage test: the runtime image plus the test dependencies.",
        "FROM runtime AS test",
        "COPY --from=test-deps /opt/venv /opt/venv",
        "",
    ]
    dockerignore = None
    if plan.dockerignore is not None:
        dockerignore = (
            "# Generated by imagebuilder: the project has no .dockerignore.\n"
            + _requirements_file(plan.dockerignore)
        )
    dockerfile = "\n".join(lines)
    if cache_id is not None:
        dockerfile = dockerfile.replace(_UV_CACHE, f"{_UV_CACHE},id={cache_id}-uv").replace(
            _PIP_CACHE, f"{_PIP_CACHE},id={cache_id}-pip"
        )
    return RenderedBuild(dockerfile=dockerfile, files=files, dockerignore=dockerignore)


def _tools_stage(plan: Plan, bases: BaseImages) -> list[str]:
    lines = [
        "",
        "# Stage tools: uv (and the lock's own tool) in a venv of their own, cached across builds.",
        f"FROM {bases.builder} AS tools",
        # Unset normally; a build asked to run afresh (no_cache) sets it, which changes the key
        # of every step below and of every stage built on this one: a fresh build without
        # `docker build --no-cache`, which can crash dockerd 20.10's BuildKit when builds that
        # share steps run at once (moby/buildkit#2303).
        f"ARG {FRESH_ARG}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "
        "PIP_ROOT_USER_ACTION=ignore UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never "
        f"PATH=$PATH:{TOOLS_DIR}/bin",
        _run(
            _PIP_CACHE,
            command=f"python3 -m venv {TOOLS_DIR} && {TOOLS_DIR}/bin/pip install --quiet {UV}",
            installs=True,
        ),
    ]
    if plan.system_packages:
        # What the native code compiles against (core/detection/native.py), before anything is
        # built.
        lines.append(
            f"RUN --mount=type=secret,id={CA_SECRET_ID} {install_script(plan.system_packages)}"
        )
    if plan.lock_tool in LOCK_TOOLS:
        packages = " ".join(LOCK_TOOLS[plan.lock_tool])
        lines.append(_uv(f"uv pip install --python {TOOLS_DIR}/bin/python {packages}"))
    return lines


def _export(plan: Plan, output: str, *, test: bool) -> str | None:
    """The lock tool's command writing the locked requirements to `output`."""
    groups, extras = plan.test_groups, plan.test_extras
    if test and not groups and not extras:
        return None
    if plan.lock_tool == "uv":
        selection = "".join(f" --group {g}" for g in groups) + "".join(
            f" --extra {e}" for e in extras
        )
        # Path dependencies are built from the source with the project, not installed here.
        local = "".join(f" --no-emit-package {name}" for name in plan.lock_local_packages)
        return (
            "uv export --frozen --no-emit-project --no-emit-workspace --no-default-groups"
            f"{local} --no-header --format requirements-txt{selection if test else ''} -o {output}"
        )
    if plan.lock_tool == "poetry":
        selection = "".join(f" --with {g}" for g in groups) + "".join(
            f" --extras {e}" for e in extras
        )
        return (
            f"poetry export --no-interaction --format requirements.txt"
            f"{selection if test else ' --only main'} --output {output}"
        )
    if plan.lock_tool == "pdm":
        selection = "".join(f" --group {g}" for g in [*extras, *groups])
        return (
            "pdm export --format requirements"
            f"{' --dev' + selection if test else ' --prod'} --output {output}"
        )
    return None


def _deps_stage(plan: Plan, bases: BaseImages, needs_tools: bool, constraints: str) -> list[str]:
    lines = [
        "",
        "# Stage deps: the runtime dependencies, keyed only by the dependency files.",
        f"FROM {'tools' if needs_tools else bases.builder} AS deps",
    ]
    if not needs_tools:
        return [*lines, "RUN python3 -m venv --without-pip /opt/venv"]
    generated = [f"{GENERATED_DIR}/requirements.txt", f"{GENERATED_DIR}/constraints.txt"]
    if plan.locked_requirements or plan.locked_test_requirements:
        generated.append(f"{GENERATED_DIR}/locked.txt")
    lines += [
        "ENV VIRTUAL_ENV=/opt/venv UV_COMPILE_BYTECODE=1",
        "RUN uv venv --quiet --python python3 /opt/venv",
        f"COPY {' '.join(generated)} /tmp/imagebuilder/",
    ]
    if plan.lock_tool is not None:
        lines.append(f"COPY {' '.join(plan.lock_files)} /tmp/imagebuilder/project/")
        export = _export(plan, "/tmp/imagebuilder/locked.txt", test=False)
        lines.append(
            _uv(
                f"cd /tmp/imagebuilder/project && {export}"
                " && uv pip install -r /tmp/imagebuilder/locked.txt"
            )
        )
    elif plan.locked_requirements:
        lines.append(_uv("uv pip install -r /tmp/imagebuilder/locked.txt"))
    if plan.requirements:
        lines.append(_uv(f"uv pip install -r /tmp/imagebuilder/requirements.txt{constraints}"))
    return lines


def _wheel_stage(plan: Plan) -> list[str]:
    lines = [
        "",
        "# Stage wheel: the project built as a wheel; the code that is installed must compile.",
        "FROM tools AS wheel",
        "WORKDIR /src",
    ]
    if plan.build_environment:
        # The version of a VCS-versioned project uploaded without its .git.
        lines.append(
            "ENV "
            + " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(plan.build_environment.items()))
        )
    lines += [
        "COPY . .",
        f"RUN rm -rf {GENERATED_DIR} && mkdir -p /wheels /meta",
    ]
    targets = (["."] if plan.install_project else []) + plan.local_packages
    steps = [
        f"cp {t} /wheels/"
        if t.endswith(".whl")
        else f"uv build --quiet --wheel --out-dir /wheels {t}"
        for t in targets
    ]
    lines += [
        _uv(" && ".join(steps)),
        f"RUN {_STRICT_COMPILE}",
    ]
    if plan.dependencies_from_source:
        lines.append(f"RUN {_WHEEL_REQUIREMENTS}")
    return lines


def _test_deps_stage(plan: Plan, venv_stage: str, constraints: str) -> list[str]:
    lines = [
        "",
        "# Stage test-deps: the test dependencies on top of the runtime ones.",
        f"FROM {venv_stage} AS test-deps",
    ]
    generated = [f"{GENERATED_DIR}/requirements-test.txt"]
    if plan.locked_requirements or plan.locked_test_requirements:
        generated.append(f"{GENERATED_DIR}/locked-test.txt")
    lines.append(f"COPY {' '.join(generated)} /tmp/imagebuilder/")
    export = _export(plan, "/tmp/imagebuilder/locked-test.txt", test=True)
    if export is not None:
        lines.append(
            _uv(
                f"cd /tmp/imagebuilder/project && {export}"
                " && uv pip install -r /tmp/imagebuilder/locked-test.txt"
            )
        )
    elif plan.locked_test_requirements:
        lines.append(_uv("uv pip install -r /tmp/imagebuilder/locked-test.txt"))
    if plan.test_requirements:
        lines.append(_uv(f"uv pip install -r /tmp/imagebuilder/requirements-test.txt{constraints}"))
    return lines


def _runtime_stage(
    plan: Plan, bases: BaseImages, venv_stage: str, builds_wheels: bool, native: bool
) -> list[str]:
    web = plan.start_kind == "web" and plan.port is not None
    env = "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VIRTUAL_ENV=/opt/venv "
    env += "PATH=/opt/venv/bin:$PATH"
    if web:
        env += f" PORT={plan.port}"
    labels = f"LABEL org.opencontainers.image.base.name={json.dumps(bases.runtime)}"
    if plan.project_name:
        labels += f" org.opencontainers.image.title={json.dumps(plan.project_name)}"
    lines = [
        "",
        "# Stage runtime: slim base, the venv and the code; no compilers, no tools, no caches.",
        f"FROM {bases.runtime} AS runtime",
        env,
        labels,
        # Written directly: minimal bases have no useradd.
        f"RUN echo 'app:x:{APP_UID}:{APP_UID}:app:/app:/usr/sbin/nologin' >> /etc/passwd"
        f" && echo 'app:x:{APP_UID}:' >> /etc/group",
        f"COPY --from={venv_stage} /opt/venv /opt/venv",
    ]
    if native:
        lines.append(
            "RUN --mount=type=bind,from=native,source=/meta,target=/meta"
            f" --mount=type=secret,id={CA_SECRET_ID} {RUNTIME_INSTALL}"
        )
    if builds_wheels:
        # uv comes from the tools stage through a bind mount: it never lands in the image.
        # compileall then writes bytecode for the new files only (the rest is up to date).
        lines.append(
            f"RUN --mount=type=bind,from=tools,source={TOOLS_DIR},target={TOOLS_DIR}"
            " --mount=type=bind,from=wheel,source=/wheels,target=/wheels"
            f" {TOOLS_DIR}/bin/uv pip install --quiet --python /opt/venv/bin/python --no-deps"
            " --no-index --no-cache /wheels/*.whl"
            " && (python -m compileall -qq -j 0 /opt/venv/lib || true)"
        )
    lines += [
        # The app may write next to its code (Flask's instance folder, SQLite files, uploads):
        # /app belongs to the app user. The venv and the system stay root's, read-only to it.
        f"COPY --from=source --chown={APP_UID}:{APP_UID} /src /app",
        "WORKDIR /app",
        f"USER {APP_UID}:{APP_UID}",
    ]
    if web:
        probe = ["python", "-c", healthcheck_probe(plan.port or 0)]
        lines += [
            f"EXPOSE {plan.port}",
            "HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3"
            f" CMD {json.dumps(probe)}",
        ]
    lines.append(f"CMD {json.dumps(plan.start_command or ['python'])}")
    return lines

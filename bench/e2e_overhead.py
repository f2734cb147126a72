#!/usr/bin/env python3
"""Service overhead: one project built and tested through imagebuilder vs plain docker.

Each round changes one source line (so the source layers rebuild and the dependency layer is
reused, the common case), then times, in alternating order:
  service  POST the zip, wait (polling 0.1 s) until the build is terminal: queue, extract, detect,
           BuildKit build of the runtime and test stages, tests in a locked-down container, tag;
  plain    `docker build` of the same Dockerfile and context (runtime and test targets) and
           `docker run` of the same test command with the same limits.
  reused   the service again with the very same zip: the earlier result is taken, nothing is
           built (`reused_from`).
It prints each round and the median ratios service / plain (the goal is at most 1.10) and
reused / plain.

    .venv/bin/python bench/e2e_overhead.py [--rounds N] [--project tests/projects/passing]

Starts its own API and worker (in a temporary data folder) and needs Redis and Docker running,
as `make bench` arranges.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.detection.detect import detect  # noqa: E402
from core.dockerfile.render import CA_SECRET_ID, BaseImages, render  # noqa: E402
from core.settings import Settings  # noqa: E402

TERMINAL = {"succeeded", "failed", "error", "timed_out", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def zip_tree(top: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(top).as_posix())
    return buffer.getvalue()


def touch_source(project: Path, round_number: int) -> None:
    """Change one line of source so that source layers rebuild (dependencies stay cached)."""
    target = sorted(p for p in project.rglob("*.py") if "tests" not in p.parts)[0]
    lines = target.read_text().splitlines()
    lines = [line for line in lines if not line.startswith("# bench round")]
    target.write_text(
        "\n".join([*lines, f"# bench round {round_number} {secrets.token_hex(4)}"]) + "\n"
    )


class Service:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "ib_bench_" + secrets.token_urlsafe(32)
        self.env = env | {
            "IMAGEBUILDER_DATA_DIR": str(data_dir),
            "IMAGEBUILDER_BOOTSTRAP_TOKEN": self.token,
            "IMAGEBUILDER_REDIS_URL": env.get(
                "IMAGEBUILDER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"
            ),
        }
        logs = data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        venv = Path(sys.executable).parent
        subprocess.run(
            [str(venv / "alembic"), "upgrade", "head"], cwd=ROOT, env=self.env, check=True
        )
        self.processes = [
            self._start(
                [
                    str(venv / "uvicorn"),
                    "--factory",
                    "app.main:app_factory",
                    "--port",
                    str(self.port),
                ],
                logs / "api.log",
            ),
            self._start(
                [
                    str(venv / "celery"),
                    "-A",
                    "worker.celery_app",
                    "worker",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "WARNING",
                ],
                logs / "worker.log",
            ),
        ]
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the service did not start; see {logs}")
            time.sleep(0.2)

    def _start(self, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def build(self, data: bytes, tag: str) -> tuple[float, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            started = time.perf_counter()
            response = client.post(
                "/api/v1/builds", files={"source": ("p.zip", data)}, data={"tag": tag}
            )
            response.raise_for_status()
            build_id = response.json()["id"]
            while True:
                build: dict[str, Any] = client.get(f"/api/v1/builds/{build_id}").json()
                if build["status"] in TERMINAL:
                    return time.perf_counter() - started, build
                time.sleep(0.1)

    def log(self, build_id: str) -> list[str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            return client.get(f"/api/v1/builds/{build_id}/logs").text.splitlines()

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)


def plain(project: Path, settings: Settings, workdir: Path, tag: str) -> float:
    """The same Dockerfile and context with plain docker build + docker run."""
    context = workdir / "context"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(project, context)
    plan = detect(
        context,
        available_versions=[settings.default_python_version],
        default_version=settings.default_python_version,
    )
    bases = BaseImages(
        settings.builder_image(plan.python_version), settings.runtime_image(plan.python_version)
    )
    rendered = render(plan, bases, build_id="b_BENCH")
    for relative, content in rendered.files.items():
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        (context / relative).write_text(content)
    dockerfile = workdir / "Dockerfile"
    dockerfile.write_text(rendered.dockerfile)
    docker = settings.docker_cli
    secret = (
        ["--secret", f"id={CA_SECRET_ID},src={settings.ca_bundle}"] if settings.ca_bundle else []
    )
    env = os.environ | {"DOCKER_BUILDKIT": "1"}
    started = time.perf_counter()
    for target, name in (("runtime", tag), ("test", tag + "-test")):
        subprocess.run(
            [
                docker,
                "build",
                "-q",
                *secret,
                "-f",
                str(dockerfile),
                "--target",
                target,
                "-t",
                name,
                str(context),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    subprocess.run(
        [
            docker,
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,exec,size=256m",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--memory",
            "1g",
            "--pids-limit",
            "256",
            "--entrypoint",
            "/bin/sh",
            tag + "-test",
            "-c",
            "mkdir -p /tmp/w && cp -R . /tmp/w && cd /tmp/w"
            " && python -m pytest -p no:cacheprovider --junitxml=/tmp/j.xml",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    subprocess.run([docker, "rmi", "-f", tag + "-test"], check=False, stdout=subprocess.DEVNULL)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--project", type=Path, default=ROOT / "tests/projects/passing")
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="ib-bench-") as temp:
        workdir = Path(temp)
        project = workdir / "project"
        shutil.copytree(args.project, project)
        service = Service(workdir / "data", dict(os.environ))
        ratios: list[float] = []
        # The service also runs checks plain docker does not (the scanning phase: native
        # libraries, the boot check, the package inventory, SBOM): reported apart.
        like_for_like: list[float] = []
        reused_ratios: list[float] = []
        try:
            touch_source(project, 0)  # warm both paths once: dependency layers cached for both
            service.build(zip_tree(project), "imagebuilder-bench/service:warm")
            plain(project, settings, workdir, "imagebuilder-bench/plain:warm")
            print(
                f"{'round':>5} {'service s':>10} {'scanning s':>10} {'plain s':>8} {'ratio':>6} "
                f"{'without scanning':>16} {'reused s':>9} {'ratio':>6}"
            )
            for number in range(1, args.rounds + 1):
                # Each side gets its own change, or the second would reuse the first one's
                # layers; the service's zip is kept to submit it again unchanged.
                if number % 2:
                    touch_source(project, number)
                    data = zip_tree(project)
                    service_s, build = service.build(data, "imagebuilder-bench/service:1")
                    touch_source(project, number)
                    plain_s = plain(project, settings, workdir, "imagebuilder-bench/plain:1")
                else:
                    touch_source(project, number)
                    plain_s = plain(project, settings, workdir, "imagebuilder-bench/plain:1")
                    touch_source(project, number)
                    data = zip_tree(project)
                    service_s, build = service.build(data, "imagebuilder-bench/service:1")
                if build["status"] != "succeeded":
                    raise SystemExit(f"service build ended {build['status']}: {build.get('error')}")
                scanning = sum(
                    phase["duration_seconds"] or 0.0
                    for phase in build["phases"]
                    if phase["phase"] == "scanning"
                )
                # The same files again: the service takes the result it just built.
                reused_s, again = service.build(data, "imagebuilder-bench/service:2")
                if again.get("reused_from") != build["id"]:
                    said = [line for line in service.log(str(again["id"])) if "reuse" in line]
                    raise SystemExit(f"the identical submission was not reused: {said}")
                ratios.append(service_s / plain_s)
                like_for_like.append((service_s - scanning) / plain_s)
                reused_ratios.append(reused_s / plain_s)
                print(
                    f"{number:>5} {service_s:>10.2f} {scanning:>10.2f} {plain_s:>8.2f} "
                    f"{ratios[-1]:>6.2f} {like_for_like[-1]:>16.2f} {reused_s:>9.2f} "
                    f"{reused_ratios[-1]:>6.2f}"
                )
        finally:
            service.stop()
            # The service tags in the owner's namespace (the bootstrap token's owner is admin).
            owned = f"{settings.image_namespace}/admin/imagebuilder-bench"
            for tag in ("service:warm", "service:1", "service:2"):
                subprocess.run(
                    [settings.docker_cli, "rmi", "-f", f"{owned}/{tag}"],
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            for tag in ("plain:warm", "plain:1"):
                subprocess.run(
                    [settings.docker_cli, "rmi", "-f", f"imagebuilder-bench/{tag}"],
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
    print(
        f"median ratio service/plain over {len(ratios)} rounds: "
        f"{statistics.median(ratios):.2f} (goal <= 1.10)"
    )
    print(f"median ratio without the scanning phase: {statistics.median(like_for_like):.2f}")
    print(f"median ratio reused/plain: {statistics.median(reused_ratios):.2f}")


if __name__ == "__main__":
    main()

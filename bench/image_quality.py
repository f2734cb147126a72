#!/usr/bin/env python3
"""Image quality of the generated Dockerfile against a naive one, for a Flask and a FastAPI app.

    .venv/bin/python bench/image_quality.py [--keep]

For each fixture (tests/projects/flask_factory, tests/projects/fastapi_app), side by side:

    size      generated image size / naive image size                          goal <= 0.50
    source    rebuild after a source-only change / cold build                  goal <= 0.10
    dep       rebuild after adding one dependency / cold build                 goal <= 0.40

The naive Dockerfile is what a first attempt looks like: FROM the full builder base, COPY . /app,
pip install -r requirements.txt (into a venv: the local stand-in base has no global pip), CMD.
A cold build is `docker build --no-cache` with download caches (BuildKit cache mounts) of its own,
new for each run: nothing of this bench is cached, and nothing of anyone else's is pruned. The
rebuilds then use what the cold build left, as a user's second build would. For reference the
table also shows a "warm-download" cold build (--no-cache, the daemon's shared download caches),
which is what the builder does for a project it has never seen but whose packages it has.
Images get unique tags and are removed at the end.

Environment: IMAGEBUILDER_DOCKER_CLI (/usr/bin/docker), IMAGEBUILDER_BUILDER_IMAGE_TEMPLATE and
IMAGEBUILDER_RUNTIME_IMAGE_TEMPLATE (the local stand-ins), IMAGEBUILDER_CA_BUNDLE.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.detection.detect import detect  # noqa: E402
from core.dockerfile.render import CA_SECRET_ID, BaseImages, render  # noqa: E402

DOCKER = os.environ.get("IMAGEBUILDER_DOCKER_CLI", "/usr/bin/docker")
PYTHON = "3.11"
BUILDER = os.environ.get(
    "IMAGEBUILDER_BUILDER_IMAGE_TEMPLATE", "imagebuilder/python-builder:{version}"
).format(version=PYTHON)
RUNTIME = os.environ.get(
    "IMAGEBUILDER_RUNTIME_IMAGE_TEMPLATE", "imagebuilder/python:{version}"
).format(version=PYTHON)
CA_BUNDLE = Path(os.environ.get("IMAGEBUILDER_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
FIXTURES = {
    # fixture -> (file changed by the source-only edit, dependency added)
    "flask_factory": ("flaskr/__init__.py", "iniconfig==2.1.0"),
    "fastapi_app": ("main.py", "iniconfig==2.1.0"),
}
GOALS = {"size": 0.50, "source": 0.10, "dep": 0.40}
# Each timing is the median of this many builds: the machine is shared and noisy.
ROUNDS = 3
MARKERS = ("", "; python_version >= '3'", "; os_name == 'posix'")


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


NAIVE = """\
FROM {builder}
COPY . /app
WORKDIR /app
RUN --mount=type=secret,id={secret} if [ -s /run/secrets/{secret} ]; then \
export PIP_CERT=/run/secrets/{secret}; fi; \
python3 -m venv /venv && /venv/bin/pip install -r requirements.txt
ENV PATH=/venv/bin:$PATH
CMD {command}
"""


@dataclass
class Figures:
    generated_bytes: int
    naive_bytes: int
    cold_seconds: float
    source_seconds: float
    dep_seconds: float
    naive_cold_seconds: float
    naive_source_seconds: float
    warm_cold_seconds: float

    def ratios(self) -> dict[str, float]:
        return {
            "size": self.generated_bytes / self.naive_bytes,
            "source": self.source_seconds / self.cold_seconds,
            "dep": self.dep_seconds / self.cold_seconds,
        }


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.run_id = secrets.token_hex(4)
        self.tags: list[str] = []
        # The download caches of this run's generated builds (None: the daemon's shared ones).
        self.cache_id: str | None = None

    def build(self, context: Path, dockerfile: Path, tag: str, *, cold: bool) -> float:
        command = [DOCKER, "build", "--progress=plain", "-f", str(dockerfile), "-t", tag]
        if dockerfile.name.endswith(".generated"):
            command += ["--target", "runtime"]
        if cold:
            command.append("--no-cache")
        if CA_BUNDLE.is_file():
            command += ["--secret", f"id={CA_SECRET_ID},src={CA_BUNDLE}"]
        command.append(str(context))
        env = os.environ | {"DOCKER_BUILDKIT": "1"}
        started = time.monotonic()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
            raise SystemExit(f"docker build of {tag} failed")
        self.tags.append(tag)
        return elapsed

    def size(self, tag: str) -> int:
        output = subprocess.run(
            [DOCKER, "image", "inspect", "-f", "{{.Size}}", tag],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(output.strip())

    def cleanup(self) -> None:
        for tag in self.tags:
            subprocess.run([DOCKER, "image", "rm", "-f", tag], capture_output=True, check=False)

    def measure(self, fixture: str) -> Figures:
        changed_file, dependency = FIXTURES[fixture]
        generated_dir = self.work / f"{fixture}-generated"
        naive_dir = self.work / f"{fixture}-naive"
        for target in (generated_dir, naive_dir):
            shutil.copytree(ROOT / "tests" / "projects" / fixture, target)
        dockerfile = self.render(generated_dir)
        naive_file = self.work / f"{fixture}.naive"
        plan = detect(naive_dir, available_versions=[PYTHON], default_version=PYTHON)
        naive_file.write_text(
            NAIVE.format(
                builder=BUILDER,
                secret=CA_SECRET_ID,
                command=json.dumps(plan.start_command or ["python3"]),
            ),
            encoding="utf-8",
        )
        tag = f"imagebuilder-bench/{fixture}"
        gen, naive = f"{tag}:gen-{self.run_id}", f"{tag}:naive-{self.run_id}"
        say(f"{fixture}: cold builds (--no-cache, empty download caches), {ROUNDS} rounds")
        colds = []
        for round_number in range(ROUNDS):
            self.cache_id = f"imagebuilder-bench-{self.run_id}-{fixture}-{round_number}"
            dockerfile = self.render(generated_dir)
            colds.append(self.build(generated_dir, dockerfile, gen, cold=True))
        cold = median(colds)
        say(f"{fixture}: cold builds (--no-cache, shared download caches), {ROUNDS} rounds")
        self.cache_id = None
        dockerfile = self.render(generated_dir)
        warm_cold = median(
            self.build(generated_dir, dockerfile, gen, cold=True) for _ in range(ROUNDS)
        )
        # The rebuilds continue from the last cold build with private caches.
        self.cache_id = f"imagebuilder-bench-{self.run_id}-{fixture}-{ROUNDS - 1}"
        dockerfile = self.render(generated_dir)
        self.build(generated_dir, dockerfile, gen, cold=False)
        naive_cold = median(
            self.build(naive_dir, naive_file, naive, cold=True) for _ in range(ROUNDS)
        )
        generated_bytes = self.size(gen)
        naive_bytes = self.size(naive)

        say(f"{fixture}: rebuilds after a source-only change, {ROUNDS} rounds")
        # The generated rounds run back to back, then the naive ones: a naive rebuild writes a
        # large layer that the daemon is still settling when the next build starts.
        source_times: list[float] = []
        naive_source_times: list[float] = []
        for directory, times in ((generated_dir, source_times), (naive_dir, naive_source_times)):
            for round_number in range(ROUNDS):
                with (directory / changed_file).open("a", encoding="utf-8") as handle:
                    handle.write(f"\n# bench edit {self.run_id} {round_number}\n")
                if directory is generated_dir:
                    dockerfile = self.render(generated_dir)
                    times.append(self.build(generated_dir, dockerfile, gen, cold=False))
                else:
                    times.append(self.build(naive_dir, naive_file, naive, cold=False))

        say(f"{fixture}: rebuilds after adding one dependency, {ROUNDS} rounds")
        requirements = (generated_dir / "requirements.txt").read_text(encoding="utf-8")
        dep_times: list[float] = []
        for marker in MARKERS[:ROUNDS]:
            # Each round adds the same package from the same cached state; a different
            # (always true) marker makes the line new, so its layer is never a cache hit.
            (generated_dir / "requirements.txt").write_text(requirements, encoding="utf-8")
            dockerfile = self.render(generated_dir)
            self.build(generated_dir, dockerfile, gen, cold=False)
            (generated_dir / "requirements.txt").write_text(
                requirements + f"{dependency}{marker}\n", encoding="utf-8"
            )
            dockerfile = self.render(generated_dir)
            dep_times.append(self.build(generated_dir, dockerfile, gen, cold=False))
        return Figures(
            generated_bytes,
            naive_bytes,
            cold,
            median(source_times),
            median(dep_times),
            naive_cold,
            median(naive_source_times),
            warm_cold,
        )

    def render(self, root: Path) -> Path:
        """Write the generated Dockerfile and its files as the worker does."""
        plan = detect(root, available_versions=[PYTHON], default_version=PYTHON)
        rendered = render(
            plan, BaseImages(BUILDER, RUNTIME), build_id="b_BENCH", cache_id=self.cache_id
        )
        for relative, content in rendered.files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        if rendered.dockerignore is not None:
            (root / ".dockerignore").write_text(rendered.dockerignore, encoding="utf-8")
        path = self.work / f"{root.name}.generated"
        path.write_text(rendered.dockerfile, encoding="utf-8")
        return path


def report(results: dict[str, Figures]) -> bool:
    names = list(results)
    width = 34
    say()
    say(f"{'':{width}}" + "".join(f"{name:>16}" for name in names) + f"{'goal':>10}")

    def row(label: str, values: list[str], goal: str = "") -> None:
        say(f"{label:{width}}" + "".join(f"{value:>16}" for value in values) + f"{goal:>10}")

    row("generated image (MB)", [f"{r.generated_bytes / 1e6:.1f}" for r in results.values()])
    row("naive image (MB)", [f"{r.naive_bytes / 1e6:.1f}" for r in results.values()])
    row("cold build, generated (s)", [f"{r.cold_seconds:.1f}" for r in results.values()])
    row(
        "  with shared download caches (s)",
        [f"{r.warm_cold_seconds:.1f}" for r in results.values()],
    )
    row("cold build, naive (s)", [f"{r.naive_cold_seconds:.1f}" for r in results.values()])
    row("source-only rebuild (s)", [f"{r.source_seconds:.1f}" for r in results.values()])
    row("  naive, for reference (s)", [f"{r.naive_source_seconds:.1f}" for r in results.values()])
    row("one-dependency rebuild (s)", [f"{r.dep_seconds:.1f}" for r in results.values()])
    row(
        "  source-only ÷ shared-cache cold",
        [f"{r.source_seconds / r.warm_cold_seconds:.3f}" for r in results.values()],
    )
    ok = True
    labels = {
        "size": "size ÷ naive",
        "source": "source-only rebuild ÷ cold",
        "dep": "one-dependency rebuild ÷ cold",
    }
    for key, label in labels.items():
        goal = GOALS[key]
        cells = []
        for figures in results.values():
            value = figures.ratios()[key]
            met = value <= goal
            ok = ok and met
            cells.append(f"{value:.3f} {'ok' if met else 'MISS'}")
        row(label, cells, f"<= {goal:.2f}")
    say()
    say("all goals met" if ok else "some goals are missed")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the work folder and images")
    args = parser.parse_args()
    for image in (BUILDER, RUNTIME):
        found = subprocess.run([DOCKER, "image", "inspect", image], capture_output=True)
        if found.returncode != 0:
            say(f"base image {image} is missing (scripts/base-images.sh {PYTHON})")
            return 2
    work = Path(tempfile.mkdtemp(prefix="imagebuilder-bench-"))
    bench = Bench(work)
    try:
        results = {fixture: bench.measure(fixture) for fixture in FIXTURES}
        ok = report(results)
    finally:
        if not args.keep:
            bench.cleanup()
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

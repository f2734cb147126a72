#!/usr/bin/env python3
"""The API under load: status pollers, live-log followers, list paging and uploads at once,
against the real service (API, build worker, Redis) while real builds run; SQLite, then PostgreSQL.

For each database it starts a fresh service, keeps two builds running (a project whose tests take
a few seconds, so logs stream), then runs, side by side in one run:
  load      N status pollers (each polls one build once a second), F SSE followers (each follows
            a live build to its `end` event, then the next), list paging (10 clients, 1 page/s)
            and uploads (the builds it keeps running), for --seconds; then waits for the
            followers' last builds to end;
  capacity  50 keep-alive connections polling status back to back for --capacity-seconds, from a
            separate client process of plain asyncio HTTP/1.1: polls per second, per API
            CPU-second, and the CPU the API and the client used.
It prints p50/p99 latency per route, errors, and how many follows reached the `end` event.

    .venv/bin/python bench/api_load.py [--pollers 100,500] [--followers 100,200] [--seconds 30]
        [--api-workers 1] [--databases sqlite,postgresql]

Targets only 127.0.0.1. Needs Redis, Docker with the local base images, and for PostgreSQL a
server at IMAGEBUILDER_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:55432),
on which it (re)creates the database imagebuilder_bench_api.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests/projects/sleepy_tests"
OWNERS = 4
BUILDS_RUNNING = 2
FOLLOW_TIMEOUT = 600.0
CAPACITY_CLIENTS = 50
TERMINAL = {"succeeded", "failed", "error", "timed_out", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def project_zip(salt: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(PROJECT.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(PROJECT).as_posix())
        # A fresh source each time: the build really runs its steps.
        archive.writestr("app.py", f"VERSION = {salt!r}\n")
    return buffer.getvalue()


def fresh_postgres(base: str) -> str:
    import psycopg

    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS imagebuilder_bench_api WITH (FORCE)")
        connection.execute("CREATE DATABASE imagebuilder_bench_api")
    return f"{base}/imagebuilder_bench_api"


class Service:
    """API, build worker and migrations as real processes, in a temporary data folder."""

    def __init__(self, data_dir: Path, database_url: str, api_workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "ib_bench_" + secrets.token_urlsafe(32)
        self.log_dir = data_dir / "logs"
        self.log_dir.mkdir(parents=True)
        self.env = dict(os.environ) | {
            "IMAGEBUILDER_DATA_DIR": str(data_dir),
            "IMAGEBUILDER_DATABASE_URL": database_url,
            "IMAGEBUILDER_BOOTSTRAP_TOKEN": self.token,
            "IMAGEBUILDER_REDIS_URL": os.environ.get(
                "IMAGEBUILDER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"
            ),
            "IMAGEBUILDER_PORT": str(self.port),
            "IMAGEBUILDER_HOST": "127.0.0.1",
            "IMAGEBUILDER_API_WORKERS": str(api_workers),
            "IMAGEBUILDER_LOG_LEVEL": "WARNING",
            # Every follower follows one of the two running builds, so up to all of them belong
            # to one owner: the per-owner cap (429 past it, tested elsewhere) is raised here.
            "IMAGEBUILDER_MAX_FOLLOWERS_PER_OWNER": "1000",
            "PYTHONPATH": str(ROOT),
        }
        python = sys.executable
        venv = Path(python).parent
        subprocess.run(
            [str(venv / "alembic"), "upgrade", "head"], cwd=ROOT, env=self.env, check=True
        )
        self.processes = [
            self._start([python, "-m", "app.serve", "--no-access-log"], "api"),
            self._start(
                [
                    str(venv / "celery"),
                    "-A",
                    "worker.celery_app",
                    "worker",
                    "--beat",
                    "--schedule",
                    str(data_dir / "beat"),
                    "--concurrency",
                    str(BUILDS_RUNNING),
                    "-O",
                    "fair",
                    "--loglevel",
                    "WARNING",
                ],
                "worker",
            ),
        ]
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the service did not start; see {self.log_dir}")
            time.sleep(0.2)

    def _start(self, command: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("wb") as out:
            return subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def api_cpu_seconds(self) -> float:
        """CPU time used so far by the API's processes (its session: uvicorn and any workers)."""
        session = self.processes[0].pid
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:  # the session id (field 6 of /proc/PID/stat)
                ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    follows_started: int = 0
    follows_ended: int = 0

    def record(
        self, route: str, started: float, response: httpx.Response | None, error: str = ""
    ) -> None:
        if response is not None and response.status_code < 400:
            self.latencies[route].append(time.perf_counter() - started)
        else:
            status = response.status_code if response is not None else error
            self.errors[route].append(str(status))


class Load:
    """The clients: each kind a set of asyncio tasks on one event loop."""

    def __init__(self, service: Service, tokens: list[str]) -> None:
        self.service = service
        self.tokens = tokens
        self.builds: dict[int, list[str]] = {owner: [] for owner in range(len(tokens))}
        self.live: dict[int, set[str]] = {owner: set() for owner in range(len(tokens))}
        self.stats = Stats()
        self.stop_at = 0.0
        self.submitting = True
        # Idle connections are dropped before uvicorn's 5 s keep-alive closes them: reusing one the
        # server is closing at that moment fails (the usual HTTP/1.1 keep-alive race).
        limits = httpx.Limits(
            max_connections=2000, max_keepalive_connections=2000, keepalive_expiry=2.0
        )
        self.client = httpx.AsyncClient(base_url=service.url, limits=limits, timeout=60)

    def headers(self, owner: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[owner]}"}

    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    async def keep_builds_running(self) -> None:
        """Uploads: keeps BUILDS_RUNNING builds active, spread over the owners."""
        owners = itertools.cycle(range(len(self.tokens)))
        while self.submitting:
            for owner in range(len(self.tokens)):
                for build_id in list(self.live[owner]):
                    response = await self.client.get(
                        f"/api/v1/builds/{build_id}", headers=self.headers(owner)
                    )
                    if response.status_code == 200 and response.json()["status"] in TERMINAL:
                        self.live[owner].discard(build_id)
            while sum(len(ids) for ids in self.live.values()) < BUILDS_RUNNING and self.submitting:
                owner = next(owners)
                started = time.perf_counter()
                try:
                    response = await self.client.post(
                        "/api/v1/builds",
                        files={"source": ("bench.zip", project_zip(secrets.token_hex(8)))},
                        data={"tag": "bench:load"},
                        headers=self.headers(owner),
                    )
                except httpx.HTTPError as exc:
                    self.stats.record("POST /builds", started, None, type(exc).__name__)
                    continue
                self.stats.record("POST /builds", started, response)
                if response.status_code == 202:
                    build_id = response.json()["id"]
                    self.builds[owner].append(build_id)
                    self.live[owner].add(build_id)
            await asyncio.sleep(0.5)

    def some_live_build(self) -> tuple[int, str] | None:
        candidates = [(owner, build_id) for owner, ids in self.live.items() for build_id in ids]
        return random.choice(candidates) if candidates else None

    def poll_targets(self) -> list[tuple[int, str]]:
        """What the pollers poll: the builds of the moment (live ones, then each owner's last)."""
        return [(owner, build_id) for owner, ids in self.builds.items() for build_id in ids[-5:]]

    async def pager(self) -> None:
        await asyncio.sleep(random.random())
        owner = random.randrange(len(self.tokens))
        cursor: str | None = None
        while self.running():
            tick = time.monotonic()
            params = {"limit": "20"} | ({"cursor": cursor} if cursor else {})
            response = await self.get("GET /builds", "/api/v1/builds", owner, params)
            cursor = response.json().get("next_cursor") if response is not None else None
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))

    async def get(
        self, route: str, path: str, owner: int, params: dict[str, str] | None = None
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await self.client.get(path, params=params, headers=self.headers(owner))
        except httpx.HTTPError as exc:
            self.stats.record(route, started, None, type(exc).__name__)
            return None
        self.stats.record(route, started, response)
        return response if response.status_code == 200 else None

    async def follower(self) -> None:
        """Follows live builds to their end, one after another, until the load stops; the last
        one is followed to its end too."""
        await asyncio.sleep(random.random() * 2)
        while self.running():
            chosen = self.some_live_build()
            if chosen is None:
                await asyncio.sleep(0.5)
                continue
            owner, build_id = chosen
            self.stats.follows_started += 1
            started = time.perf_counter()
            try:
                async with asyncio.timeout(FOLLOW_TIMEOUT):
                    async with self.client.stream(
                        "GET",
                        f"/api/v1/builds/{build_id}/logs",
                        headers=self.headers(owner) | {"Accept": "text/event-stream"},
                        timeout=httpx.Timeout(60, read=60),
                    ) as response:
                        self.stats.record("GET /logs (SSE, to first byte)", started, response)
                        if response.status_code != 200:
                            await asyncio.sleep(1)
                            continue
                        async for line in response.aiter_lines():
                            if line == "event: end":
                                self.stats.follows_ended += 1
                                break
            except (httpx.HTTPError, TimeoutError) as exc:
                self.stats.errors["GET /logs (SSE)"].append(type(exc).__name__)

    def capacity(self, seconds: float, clients: int = CAPACITY_CLIENTS) -> Capacity:
        """Status polls back to back from `clients` keep-alive connections for `seconds`, sent by
        a separate process of plain asyncio HTTP/1.1 (cheap enough not to be the bottleneck; its
        CPU is reported): answered polls per second, and polls per API CPU-second (what one API
        process does with a core to itself, on a machine shared with other work)."""
        targets = [
            (self.tokens[owner], build_id)
            for owner, ids in self.builds.items()
            for build_id in ids[-5:]
        ]
        cpu_before = self.service.api_cpu_seconds()
        result = subprocess.run(
            raw_client_command(self.service.port, targets, seconds, clients),
            check=True,
            capture_output=True,
            text=True,
        )
        cpu = self.service.api_cpu_seconds() - cpu_before
        measured = json.loads(result.stdout)
        for error in measured["errors"]:
            self.stats.errors["capacity"].append(error)
        polls = measured["polls"]
        return Capacity(
            polls_per_second=polls / measured["seconds"],
            polls_per_api_cpu_second=polls / cpu if cpu else 0.0,
            api_cores=cpu / measured["seconds"],
            client_cores=measured["cpu_seconds"] / measured["seconds"],
        )


@dataclass
class Capacity:
    polls_per_second: float
    polls_per_api_cpu_second: float
    api_cores: float
    client_cores: float


async def raw_client(
    port: int, targets: list[list[str]], seconds: float, clients: int, interval: float = 0.0
) -> dict[str, object]:
    """Status polls from `clients` keep-alive connections of plain asyncio HTTP/1.1 (a few
    microseconds of CPU a request, so the load generator is never the bottleneck): each sends a
    poll of one of `targets` (token, build id), reads the answer (Content-Length framed), and
    sends the next one `interval` seconds after the last began (0: at once), until `seconds`
    have passed. Returns the polls answered, their latencies, the errors and the CPU used."""
    latencies: list[float] = []
    errors: list[str] = []
    end = time.monotonic() + seconds

    async def connection(number: int) -> None:
        requests = [
            f"GET /api/v1/builds/{build_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
            for token, build_id in targets
        ]
        if interval:
            await asyncio.sleep(random.random() * interval)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        turn = number
        try:
            while time.monotonic() < end:
                started = time.perf_counter()
                writer.write(requests[turn % len(requests)])
                turn += 1
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                status = int(head[9:12])
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors.append(str(status))
                if interval:
                    await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(type(exc).__name__)
        finally:
            writer.close()

    cpu = time.process_time()
    started = time.monotonic()
    await asyncio.gather(*(connection(number) for number in range(clients)))
    return {
        "polls": len(latencies),
        "latencies": latencies,
        "errors": errors,
        "seconds": time.monotonic() - started,
        "cpu_seconds": time.process_time() - cpu,
    }


def raw_client_command(
    port: int, targets: list[tuple[str, str]], seconds: float, clients: int, interval: float = 0.0
) -> list[str]:
    spec = {
        "port": port,
        "targets": targets,
        "seconds": seconds,
        "clients": clients,
        "interval": interval,
    }
    return [sys.executable, __file__, "--raw-client", json.dumps(spec)]


async def create_tokens(service: Service) -> list[str]:
    async with httpx.AsyncClient(
        base_url=service.url, headers={"Authorization": f"Bearer {service.token}"}
    ) as client:
        tokens = []
        for number in range(OWNERS):
            response = await client.post("/api/v1/tokens", json={"owner": f"bench{number}"})
            response.raise_for_status()
            tokens.append(response.json()["token"])
        return tokens


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def scenario(
    service: Service,
    tokens: list[str],
    pollers: int,
    followers: int,
    seconds: float,
    capacity_seconds: float,
) -> list[str]:
    load = Load(service, tokens)
    builder = asyncio.create_task(load.keep_builds_running())
    # Builds first, so pollers and followers have something to watch.
    while load.some_live_build() is None:
        await asyncio.sleep(0.2)
    load.stop_at = time.monotonic() + seconds
    # The pollers, each one keep-alive connection polling a build once a second, run in a process
    # of their own: many httpx clients on this event loop would cost more CPU than the API.
    targets = [(tokens[owner], build_id) for owner, build_id in load.poll_targets()]
    poller_process = await asyncio.create_subprocess_exec(
        *raw_client_command(service.port, targets, seconds, pollers, interval=1.0),
        stdout=asyncio.subprocess.PIPE,
    )
    tasks = [asyncio.create_task(load.pager()) for _ in range(10)]
    tasks += [asyncio.create_task(load.follower()) for _ in range(followers)]
    cpu_at_start = service.api_cpu_seconds()
    client_cpu_at_start = time.process_time()
    await asyncio.sleep(seconds)
    load_cpu = service.api_cpu_seconds() - cpu_at_start
    client_cpu = time.process_time() - client_cpu_at_start
    load.submitting = False
    polled, _ = await poller_process.communicate()
    polls = json.loads(polled)
    load.stats.latencies["GET /builds/{id}"] = polls["latencies"]
    load.stats.errors["GET /builds/{id}"] = polls["errors"]
    await asyncio.gather(*tasks)
    await builder
    await load.client.aclose()
    capacity = load.capacity(capacity_seconds)
    lines = [
        f"  {pollers} pollers + {followers} SSE followers + 10 list pagers + uploads, "
        f"{seconds:g} s:"
    ]
    lines.append(f"    {'route':<34} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    routes = sorted(set(load.stats.latencies) | set(load.stats.errors))
    for route in routes:
        values = load.stats.latencies.get(route, [])
        errors = load.stats.errors.get(route, [])
        p50 = f"{percentile(values, 0.5):8.1f}" if values else f"{'-':>8}"
        p99 = f"{percentile(values, 0.99):8.1f}" if values else f"{'-':>8}"
        lines.append(
            f"    {route:<34} {len(values):>8} {p50} {p99} {len(errors):>6}"
            + (f"  ({', '.join(sorted(set(errors)))})" if errors else "")
        )
    if load.stats.errors.get("capacity"):
        failed = load.stats.errors["capacity"]
        lines.append(f"    capacity errors: {len(failed)} ({', '.join(sorted(set(failed)))})")
    lines.append(
        f"    follows that reached the end: {load.stats.follows_ended} "
        f"of {load.stats.follows_started}"
    )
    lines.append(
        f"    CPU during the load: API {load_cpu / seconds:.2f} cores, "
        f"followers, pagers and uploads {client_cpu / seconds:.2f}, "
        f"pollers' process {polls['cpu_seconds'] / seconds:.2f}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    lines.append(
        f"    capacity: {capacity.polls_per_second:.0f} status polls/s "
        f"({CAPACITY_CLIENTS} keep-alive connections back to back, {capacity_seconds:g} s), "
        f"{capacity.polls_per_api_cpu_second:.0f} polls per API CPU-second; "
        f"CPU: API {capacity.api_cores:.2f} cores, client process {capacity.client_cores:.2f}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pollers", default="100,500")
    parser.add_argument("--followers", default="100,200")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--raw-client", help=argparse.SUPPRESS)  # a poller or capacity process
    args = parser.parse_args()
    if args.raw_client:
        print(json.dumps(asyncio.run(raw_client(**json.loads(args.raw_client)))))
        return
    pairs = list(
        zip(
            (int(n) for n in args.pollers.split(",")),
            (int(n) for n in args.followers.split(",")),
            strict=True,
        )
    )
    postgres = os.environ.get(
        "IMAGEBUILDER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:55432"
    )
    report: list[str] = []
    for database in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="ib-bench-load-") as temp:
            data = Path(temp) / "data"
            data.mkdir()
            url = (
                f"sqlite:///{data / 'imagebuilder.db'}"
                if database == "sqlite"
                else fresh_postgres(postgres)
            )
            service = Service(data, url, args.api_workers)
            try:
                tokens = asyncio.run(create_tokens(service))
                report.append(
                    f"{database} ({args.api_workers} API process(es), "
                    f"1 worker x {BUILDS_RUNNING} builds):"
                )
                for pollers, followers in pairs:
                    lines = asyncio.run(
                        scenario(
                            service, tokens, pollers, followers, args.seconds, args.capacity_seconds
                        )
                    )
                    print("\n".join(lines), flush=True)
                    report += lines
            finally:
                service.stop()
    print("\n".join(report))


if __name__ == "__main__":
    main()

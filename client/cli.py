"""The `imagebuilder` command: submit a project folder, follow its build, manage builds and tokens.

Human output goes to stdout (logs, summaries, tables); progress, notes, warnings and errors go to
stderr, so `--json` output and piped logs stay clean. Every failure becomes one
`error: <detail> (<code>)` line on stderr and an exit code from `client.exitcodes`, never a
traceback.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, BinaryIO, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from client import __version__, render
from client.api import Api, ApiError, BuildRequest, ClientError, Json
from client.config import CONFIG_ENV, TOKEN_ENV, URL_ENV, Config, ConfigError, load_config
from client.exitcodes import HELP as EXIT_CODES_HELP
from client.exitcodes import ExitCode, for_status
from client.follow import TERMINAL, LogFollower, LogLine
from client.packing import Packed, PackingError, PackOptions, pack, select_files
from client.render import safe
from client.terminal import colour_allowed, neutralise

_MANY_FILES = 10_000  # the service's default max_archive_entries
DEBUG_ENV = "IMAGEBUILDER_DEBUG"

app = typer.Typer(
    name="imagebuilder",
    help=(
        "Build and test a Docker image of a Python project on an imagebuilder server.\n\n"
        f"Server and token: --url/--token, else {URL_ENV}/{TOKEN_ENV}, else the config file "
        f"(${CONFIG_ENV}, default ~/.config/imagebuilder/config.toml, keys url and token)."
    ),
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
tokens_app = typer.Typer(
    help="Create, list and revoke API tokens (needs an admin token).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(tokens_app, name="tokens")
webhook_app = typer.Typer(
    help="The webhook that hears of every build of yours, and its signing secret.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(webhook_app, name="webhook")
indexes_app = typer.Typer(
    help="Private package indexes your builds install from (credentials never shown again).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(indexes_app, name="indexes")
admin_app = typer.Typer(
    help="Rebuild what was made on a patched base image (needs an admin token).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(admin_app, name="admin")


class Status(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    error = "error"
    timed_out = "timed_out"
    cancelled = "cancelled"


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", metavar="URL", help=f"Server URL [env {URL_ENV}; default http://127.0.0.1:8000]."
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", metavar="TOKEN", help=f"API token [env {TOKEN_ENV}].", show_default=False
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
]
BuildId = Annotated[str, typer.Argument(help="The build's id (b_...).", show_default=False)]
ProjectPath = Annotated[
    Path,
    typer.Argument(help="The project folder to upload.", file_okay=False, show_default=True),
]
TagOption = Annotated[
    str | None, typer.Option("--tag", "-t", metavar="REF", help="Image reference, e.g. myapp:1.2.")
]
PythonOption = Annotated[
    str | None,
    typer.Option(
        "--python", metavar="X.Y", help="Python version, 3.8 to 3.14 (default: detected)."
    ),
]
NoTestsOption = Annotated[bool, typer.Option("--no-tests", help="Build without running tests.")]
TestCommandOption = Annotated[
    str | None,
    typer.Option(
        "--test-command", metavar="CMD", help="Command that runs the tests (default: detected)."
    ),
]
DockerfileOption = Annotated[
    str | None,
    typer.Option(
        "--dockerfile",
        "-f",
        metavar="PATH",
        help="Use this Dockerfile (relative to the project root).",
    ),
]
ContextDirOption = Annotated[
    str | None,
    typer.Option(
        "--context-dir", metavar="DIR", help="Sub-folder that is the project root; only it is sent."
    ),
]
BuildArgOption = Annotated[
    list[str] | None,
    typer.Option(
        "--build-arg",
        metavar="KEY=VALUE",
        help="KEY=VALUE passed to docker build (repeatable); KEY alone takes it from the env.",
    ),
]
NoGitignoreOption = Annotated[
    bool,
    typer.Option("--no-gitignore", help="Do not apply .gitignore files (.dockerignore still is)."),
]
FollowOption = Annotated[
    bool,
    typer.Option(
        "--follow/--detach",
        help="Stream the log until the build ends (default), or return once it is queued.",
    ),
]


# --- shared machinery --------------------------------------------------------------------------


@dataclass
class Session:
    """One command's configuration and output streams."""

    config: Config
    json: bool
    out: Console
    err: Console

    @classmethod
    def start(cls, url: str | None, token: str | None, json_output: bool) -> Session:
        session = cls(
            config=load_config(url=url, token=token),
            json=json_output,
            out=_console(stderr=False),
            err=_console(stderr=True),
        )
        for warning in session.config.warnings:
            session.warn(warning)
        return session

    def api(self) -> Api:
        return Api(self.config.url, self.config.token)

    def print_json(self, value: Any) -> None:
        # ensure_ascii: control characters and bidi overrides arrive as \\u escapes, inert.
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=True) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        self.err.print(Text(neutralise(message), style="dim"), soft_wrap=True)

    def warn(self, message: str) -> None:
        self.err.print(Text(f"warning: {neutralise(message)}", style="yellow"), soft_wrap=True)

    def line(self, text: Text | str) -> None:
        self.out.print(text, soft_wrap=True)
        self.out.file.flush()  # a CI log, or a script reading the build id, sees it at once


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        # Piped or in CI: no terminal width to fit, so do not cut tables at 80 columns.
        console = Console(stderr=stderr, highlight=False, markup=False, emoji=False, width=200)
    return console


def _build_args(values: Sequence[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for value in values:
        name, sep, arg = value.partition("=")
        if not name:
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE.", param_hint="--build-arg")
        if not sep:
            from_env = os.environ.get(name)
            if from_env is None:
                raise typer.BadParameter(
                    f"{name} has no =VALUE and is not set in the environment.",
                    param_hint="--build-arg",
                )
            arg = from_env
        args[name] = arg
    return args


def _preflight(api: Api) -> None:
    """Fail on a wrong URL or token before packing and uploading a big folder."""
    api.list_builds(limit=1)


def _upload_name(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip(".-")
    return f"{name or 'project'}.zip"


def _pack(
    session: Session, api: Api, folder: Path, options: PackOptions, archive: BinaryIO
) -> Packed:
    """Choose the files, check the server takes our token, then zip them into `archive`."""
    with session.err.status("Packing…") if session.err.is_terminal else nullcontext():
        selection = select_files(folder, options)
        _preflight(api)
        packed = pack(folder, archive, options, selection=selection)
    if len(selection.files) > _MANY_FILES:
        session.warn(
            f"{len(selection.files)} files: the service refuses archives of more than "
            f"{_MANY_FILES:,} entries by default; leave out data and dependencies with "
            ".dockerignore"
        )
    if selection.skipped:
        shown = ", ".join(f"{path} ({why})" for path, why in selection.skipped[:5])
        more = f" and {len(selection.skipped) - 5} more" if len(selection.skipped) > 5 else ""
        session.warn(f"left out {len(selection.skipped)} links or special files: {shown}{more}")
    session.note(
        f"Packed {len(selection.files)} files ({render.format_bytes(selection.total_bytes)}, "
        f"{render.format_bytes(packed.zip_bytes)} zipped) from {folder}; "
        f"{selection.ignored} left out by ignore rules."
    )
    return packed


def _upload(
    session: Session,
    send: Callable[[BinaryIO, str, BuildRequest, Callable[[int], None]], Json],
    archive: BinaryIO,
    filename: str,
    request: BuildRequest,
    size: int,
) -> Json:
    progress = Progress(
        TextColumn("Uploading", markup=False),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=session.err,
        transient=True,
        disable=not session.err.is_terminal,
    )
    if not session.err.is_terminal:
        session.note(f"Uploading {render.format_bytes(size)}…")
    try:
        with progress:
            task = progress.add_task("upload", total=size)
            return send(archive, filename, request, lambda n: progress.advance(task, n))
    except KeyboardInterrupt:
        session.err.print(
            Text(
                "\nInterrupted during the upload. No build was queued, unless the server had "
                "already received everything: check with `imagebuilder list`."
            )
        )
        raise typer.Exit(ExitCode.INTERRUPTED) from None


def _announce(session: Session, api: Api, build: Json) -> None:
    if session.json:
        return
    line = Text("Build ")
    line.append(safe(build["id"]), style="bold")
    line.append(" ")
    line.append_text(render.status_text(build["status"]))
    line.append(f": {safe(api.build_url(build['id']))}")
    session.line(line)


def _stream_log(
    session: Session, api: Api, build_id: str, write: Callable[[LogLine], None]
) -> tuple[Json, str] | None:
    """Hand each log line to `write` until the build ends; then the build and its final status.
    None when the user pressed Ctrl-C: the build goes on, and we said so."""

    def retry(reason: str, line: int, delay: float) -> None:
        session.warn(f"log stream lost: {reason}; resuming after line {line} in {delay:g}s")

    follower = LogFollower(api, build_id, on_retry=retry)
    try:
        for entry in follower:
            write(entry)
        build = api.get_build(build_id)
    except KeyboardInterrupt:
        _detached(session, build_id)
        return None
    status = build["status"]
    if status not in TERMINAL and follower.final_status in TERMINAL:
        status = follower.final_status or status
    return build, status


def _follow(session: Session, api: Api, build_id: str) -> ExitCode:
    """Stream the log to the end, then the summary (or, with --json, the build on stdout and
    the log on stderr); the exit code of the build's outcome."""
    log_stream = sys.stderr if session.json else sys.stdout
    colour = colour_allowed(log_stream)

    def write(entry: LogLine) -> None:
        log_stream.write(neutralise(entry.text, keep_sgr=colour) + "\n")
        log_stream.flush()

    ended = _stream_log(session, api, build_id, write)
    if ended is None:
        return ExitCode.INTERRUPTED
    build, status = ended
    if session.json:
        session.print_json(build)
    else:
        session.out.print(render.summary(build))
    return for_status(status)


def _detached(session: Session, build_id: str) -> None:
    shown = safe(build_id)
    session.err.print(
        Text(
            f"\nDetached from build {shown}: it keeps running on the server (not cancelled).\n"
            f"Follow it again with: imagebuilder logs {shown} --follow\n"
            f"Cancel it with:       imagebuilder cancel {shown}"
        ),
        soft_wrap=True,
    )


def _after_submit(session: Session, api: Api, build: Json, follow: bool) -> NoReturn:
    _announce(session, api, build)
    if not follow:
        if session.json:
            session.print_json(build)
        else:
            session.note(f"Follow it with: imagebuilder logs {safe(build['id'])} --follow")
        raise typer.Exit(ExitCode.OK)
    raise typer.Exit(_follow(session, api, build["id"]))


def _exit_code_help(text: str) -> str:
    return f"{text}\n\n{EXIT_CODES_HELP}"


# --- commands --------------------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"imagebuilder {__version__}\n")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version),
    ] = False,
) -> None:
    """The imagebuilder command line client."""


@app.command(help=_exit_code_help("Pack a project folder, upload it and follow its build."))
def submit(
    path: ProjectPath = Path("."),
    tag: TagOption = None,
    python: PythonOption = None,
    no_tests: NoTestsOption = False,
    test_command: TestCommandOption = None,
    dockerfile: DockerfileOption = None,
    context_dir: ContextDirOption = None,
    build_arg: BuildArgOption = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Build afresh: no earlier result with the same inputs reused, no layer cache.",
        ),
    ] = False,
    follow: FollowOption = True,
    no_gitignore: NoGitignoreOption = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List the files that would be uploaded; upload nothing."),
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    request = BuildRequest(
        tag=tag,
        python_version=python,
        run_tests=False if no_tests else None,
        test_command=test_command,
        dockerfile=dockerfile,
        context_dir=context_dir,
        build_args=_build_args(build_arg or []),
        no_cache=True if no_cache else None,
    )
    options = PackOptions(
        context_dir=context_dir, dockerfile=dockerfile, use_gitignore=not no_gitignore
    )
    session = Session.start(url, token, json_output)
    if dry_run:
        _show_selection(session, path, options)
        raise typer.Exit(ExitCode.OK)
    with session.api() as api, tempfile.TemporaryFile(suffix=".zip") as archive:
        packed = _pack(session, api, path, options, archive)
        build = _upload(session, api.submit, archive, _upload_name(path), request, packed.zip_bytes)
        _after_submit(session, api, build, follow)


def _show_selection(session: Session, folder: Path, options: PackOptions) -> None:
    selection = select_files(folder, options)
    if session.json:
        session.print_json(
            {
                "files": [
                    {"path": entry.arcname, "size_bytes": entry.size} for entry in selection.files
                ],
                "total_bytes": selection.total_bytes,
                "ignored": selection.ignored,
                "skipped": [{"path": path, "reason": why} for path, why in selection.skipped],
                "ignore_files": selection.ignore_files,
            }
        )
        return
    for entry in selection.files:
        session.line(Text(f"{neutralise(entry.arcname)}  ({render.format_bytes(entry.size)})"))
    for path, why in selection.skipped:
        session.warn(f"left out {path} ({why})")
    session.note(
        f"{len(selection.files)} files, {render.format_bytes(selection.total_bytes)}; "
        f"{selection.ignored} left out by ignore rules"
        + (f" ({', '.join(selection.ignore_files)})" if selection.ignore_files else "")
    )


@app.command(help="Show what the server would do with a project, without building it.")
def plan(
    path: ProjectPath = Path("."),
    python: PythonOption = None,
    no_tests: NoTestsOption = False,
    test_command: TestCommandOption = None,
    dockerfile: DockerfileOption = None,
    context_dir: ContextDirOption = None,
    no_gitignore: NoGitignoreOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    request = BuildRequest(
        python_version=python,
        run_tests=False if no_tests else None,
        test_command=test_command,
        dockerfile=dockerfile,
        context_dir=context_dir,
    )
    options = PackOptions(
        context_dir=context_dir, dockerfile=dockerfile, use_gitignore=not no_gitignore
    )
    session = Session.start(url, token, json_output)
    with session.api() as api, tempfile.TemporaryFile(suffix=".zip") as archive:
        packed = _pack(session, api, path, options, archive)
        try:
            result = _upload(
                session, api.plan, archive, _upload_name(path), request, packed.zip_bytes
            )
        except ApiError as exc:
            if exc.status in (404, 405) and exc.code in (
                "not_found",
                "method_not_allowed",
                f"http_{exc.status}",
            ):
                raise ClientError(
                    f"This server cannot show plans (POST /api/v1/plan answered "
                    f"{exc.status}); it needs a newer imagebuilder server. `imagebuilder "
                    "submit` shows the plan in the build log.",
                    "plan_unsupported",
                ) from exc
            raise
    if session.json:
        session.print_json(result)
    else:
        decided = result.get("plan")
        session.out.print(render.plan_view(decided if isinstance(decided, dict) else result))


@app.command(help="Show one build.")
def status(
    build_id: BuildId,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        build = api.get_build(build_id)
        if session.json:
            session.print_json(build)
            return
        session.out.print(
            render.details(build, api.build_url(build["id"]), api.api_url(build["id"]))
        )
        if build["status"] not in TERMINAL:
            session.note(f"Follow it with: imagebuilder logs {safe(build['id'])} --follow")


@app.command(
    help=_exit_code_help(
        "Print a build's log. With --follow, stream it until the build ends, print the "
        "summary, and exit with the build's exit code."
    )
)
def logs(
    build_id: BuildId,
    follow: Annotated[
        bool, typer.Option("--follow", "-F", help="Keep streaming until the build ends.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help='One JSON object per line: {"seq", "stream", "text"}.'),
    ] = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        if session.json:
            raise typer.Exit(_logs_as_json(session, api, build_id, follow))
        if follow:
            raise typer.Exit(_follow(session, api, build_id))
        colour = colour_allowed(sys.stdout)
        for text in api.log_lines(build_id):
            sys.stdout.write(neutralise(text, keep_sgr=colour) + "\n")
        sys.stdout.flush()


def _logs_as_json(session: Session, api: Api, build_id: str, follow: bool) -> ExitCode:
    def emit(seq: int | None, stream: str | None, text: str) -> None:
        line = {"seq": seq, "stream": stream, "text": text}
        sys.stdout.write(json.dumps(line, ensure_ascii=True) + "\n")
        sys.stdout.flush()

    if not follow:
        for seq, text in enumerate(api.log_lines(build_id), start=1):
            emit(seq, None, text)
        return ExitCode.OK
    ended = _stream_log(
        session, api, build_id, lambda entry: emit(entry.seq, entry.stream, entry.text)
    )
    return ExitCode.INTERRUPTED if ended is None else for_status(ended[1])


@app.command("list", help="List builds, newest first.")
def list_builds(
    status: Annotated[
        Status | None,
        typer.Option("--status", "-s", metavar="STATUS", help="Only builds in this state."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", min=1, max=100, metavar="N", help="At most N (1 to 100)."),
    ] = 20,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", metavar="CURSOR", help="Continue from a previous page."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        page = api.list_builds(status=status.value if status else None, limit=limit, cursor=cursor)
    if session.json:
        session.print_json(page)
        return
    if not page["items"]:
        session.note("No builds.")
        return
    session.out.print(render.builds_table(page["items"]))
    next_cursor = page.get("next_cursor")
    if isinstance(next_cursor, str) and next_cursor:
        session.note(f"More: imagebuilder list --cursor {safe(next_cursor)}")


@app.command(help="Stop a queued or running build.")
def cancel(
    build_id: BuildId,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        build = api.cancel(build_id)
    if session.json:
        session.print_json(build)
        return
    shown = safe(build["id"])
    if build["status"] == "cancelled":
        session.line(Text(f"Build {shown} cancelled."))
    else:
        session.line(
            Text(f"Cancel requested for build {shown} ({safe(build['status'])}); it stops shortly.")
        )
        session.note(f"Watch it: imagebuilder logs {shown} --follow")


@app.command(
    help=_exit_code_help("Build again from the same stored source and options; follows it.")
)
def rebuild(
    build_id: BuildId,
    follow: FollowOption = True,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        build = api.rebuild(build_id)
        _after_submit(session, api, build, follow)


@tokens_app.command("create", help="Create a token for an owner; it is shown only once.")
def tokens_create(
    owner: Annotated[
        str, typer.Option("--owner", metavar="NAME", help="Who the token belongs to.")
    ],
    admin: Annotated[bool, typer.Option("--admin", help="May see and manage everything.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        created = api.create_token(owner, admin=admin)
    if session.json:
        session.print_json(created)
        return
    role = "admin " if created.get("admin") else ""
    session.err.print(
        Text(
            f"Created {role}token {safe(created.get('id'))} for {safe(created.get('owner'))}. "
            "It is shown only this once; store it now:",
        ),
        soft_wrap=True,
    )
    # Alone on stdout, so that TOKEN=$(imagebuilder tokens create --owner ci) works.
    sys.stdout.write(safe(created.get("token")) + "\n")


@tokens_app.command("list", help="List tokens (never their secrets).")
def tokens_list(
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        tokens = api.list_tokens()
    if session.json:
        session.print_json(tokens)
    elif tokens:
        session.out.print(render.tokens_table(tokens))
    else:
        session.note("No tokens.")


@tokens_app.command("revoke", help="Revoke a token: it stops working at once.")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id.", show_default=False)],
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        api.revoke_token(token_id)
    if session.json:
        session.print_json({"id": token_id, "revoked": True})
    else:
        session.line(Text(f"Revoked token {safe(token_id)}."))


# --- artifacts, webhooks, admin ----------------------------------------------------------------

OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout."),
]
DigestOption = Annotated[
    str, typer.Option("--base-digest", metavar="sha256:HEX", help="The base image's digest.")
]


def _write_document(session: Session, document: Json, output: Path | None, what: str) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=True) + "\n"
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    output.write_text(text, encoding="utf-8")
    session.note(f"Wrote the {what} to {output}.")


@app.command(help="Print or save a succeeded build's SBOM (CycloneDX JSON).")
def sbom(
    build_id: BuildId,
    output: OutputOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    session = Session.start(url, token, json_output=True)
    with session.api() as api:
        _write_document(session, api.sbom(build_id), output, "SBOM")


@app.command(help="Print or save a succeeded build's provenance (in-toto, SLSA v1).")
def provenance(
    build_id: BuildId,
    output: OutputOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    session = Session.start(url, token, json_output=True)
    with session.api() as api:
        _write_document(session, api.provenance(build_id), output, "provenance")


@app.command(help="Show the Dockerfile a build used (the project's own or the generated one).")
def dockerfile(
    build_id: BuildId,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    session = Session.start(url, token, json_output=False)
    with session.api() as api:
        sys.stdout.write(neutralise(api.dockerfile(build_id)))
    sys.stdout.flush()


@app.command(help="Download a build's image as a tar file; load it with `docker load -i FILE`.")
def image(
    build_id: BuildId,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="Where to write the tar.")
    ],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    session = Session.start(url, token, json_output=False)
    partial = output.with_name(output.name + ".part")
    with session.api() as api:
        try:
            with partial.open("wb") as out:
                size = api.download_image(build_id, out)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
    session.note(f"Wrote {size} bytes to {output}; load it with: docker load -i {output}")


def _show_webhook(session: Session, webhook: Json) -> None:
    if session.json:
        session.print_json(webhook)
        return
    session.line(Text(f"url: {safe(webhook.get('url') or '(none)')}"))
    session.line(Text(f"secret: {safe(webhook.get('secret'))}"))
    for until in webhook.get("previous_secrets_expire_at") or []:
        session.line(Text(f"previous secret signs until: {safe(until)}"))


@webhook_app.command("show", help="Show the webhook URL and its signing secret.")
def webhook_show(
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        _show_webhook(session, api.get_webhook())


@webhook_app.command("set", help="Set the webhook URL (--remove to remove it); rotate its secret.")
def webhook_set(
    target: Annotated[
        str | None, typer.Argument(metavar="URL", help="Receives every finished build.")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the webhook.")] = False,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Replace the signing secret.")
    ] = False,
    previous_secret_seconds: Annotated[
        int | None,
        typer.Option(
            "--keep-previous",
            metavar="SECONDS",
            min=0,
            help="How long a replaced secret keeps signing (default 86400).",
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    if (target is None) == (not remove):
        raise typer.BadParameter("give a URL, or --remove")
    session = Session.start(url, token, json_output)
    with session.api() as api:
        webhook = api.set_webhook(
            None if remove else target,
            rotate_secret=rotate_secret,
            previous_secret_seconds=previous_secret_seconds,
        )
    _show_webhook(session, webhook)


IndexNameArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="The index's name (a-z, 0-9, '.', '_', '-').")
]
IndexOwnerOption = Annotated[
    str | None,
    typer.Option(
        "--owner",
        metavar="NAME",
        help="Admins: manage this owner's indexes, or `_global` for every owner's builds.",
    ),
]


def _read_password(from_stdin: bool) -> str:
    """The password from stdin (one line) or a prompt that does not echo; never an argument."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, err=True)
    if not password:
        raise typer.BadParameter("the password is empty")
    return password


@indexes_app.command(
    "put",
    help="Register (or replace) a package index. The password is prompted (or read from stdin "
    "with --password-stdin), stored encrypted and never shown again.",
)
def indexes_put(
    name: IndexNameArgument,
    index_url: Annotated[
        str,
        typer.Argument(
            metavar="INDEX_URL",
            help="The index's simple API (https://host/simple), without credentials.",
            show_default=False,
        ),
    ],
    username: Annotated[
        str | None,
        typer.Option("--username", "-u", metavar="USER", help="Log in as USER (asks a password)."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin's first line.")
    ] = False,
    default: Annotated[
        bool,
        typer.Option("--default", help="Replace PyPI as the primary index (else an extra one)."),
    ] = False,
    owner: IndexOwnerOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    if password_stdin and username is None:
        raise typer.BadParameter("--password-stdin needs --username")
    password = _read_password(password_stdin) if username is not None else None
    session = Session.start(url, token, json_output)
    with session.api() as api:
        index = api.put_index(
            name, index_url, username=username, password=password, default=default, owner=owner
        )
    if session.json:
        session.print_json(index)
    else:
        session.out.print(render.indexes_table([index]))


@indexes_app.command("list", help="List the indexes your builds use (URLs, never credentials).")
def indexes_list(
    owner: IndexOwnerOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        indexes = api.list_indexes(owner=owner)
    if session.json:
        session.print_json(indexes)
    elif indexes:
        session.out.print(render.indexes_table(indexes))
    else:
        session.note("No package indexes: builds install from PyPI.")


@indexes_app.command("delete", help="Remove a package index and its credentials.")
def indexes_delete(
    name: IndexNameArgument,
    owner: IndexOwnerOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        api.delete_index(name, owner=owner)
    if session.json:
        session.print_json({"name": name, "deleted": True})
    else:
        session.line(Text(f"Removed package index {safe(name)}."))


@admin_app.command("builds", help="List the builds made on a base image digest.")
def admin_builds(
    base_digest: DigestOption,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        page = api.builds_on_base(base_digest)
    if session.json:
        session.print_json(page)
    elif page["items"]:
        session.out.print(render.builds_table(page["items"]))
    else:
        session.note("No builds on that base.")


@admin_app.command(
    "rebuild", help="Rebuild the newest succeeded build of every owner and tag made on a base."
)
def admin_rebuild(
    base_digest: DigestOption,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    session = Session.start(url, token, json_output)
    with session.api() as api:
        report = api.rebuild_on_base(base_digest)
    if session.json:
        session.print_json(report)
        return
    for item in report.get("queued") or []:
        session.line(
            Text(f"queued {safe(item.get('id'))} (rebuild of {safe(item.get('rebuild_of'))})")
        )
    for item in report.get("skipped") or []:
        session.line(Text(f"skipped {safe(item.get('id'))}: {safe(item.get('reason'))}"))


# --- entry point -----------------------------------------------------------------------------

_HINTS = {
    "unauthenticated": (
        f"set a token with --token, {TOKEN_ENV} or the config file "
        "(ask an admin: imagebuilder tokens create --owner NAME)"
    ),
    "forbidden": "this needs an admin token",
    "connection_failed": "",
}


def _report(error: str, code: str) -> None:
    err = _console(stderr=True)
    err.print(Text(f"error: {neutralise(error)} ({neutralise(code)})", style="red"), soft_wrap=True)
    hint = _HINTS.get(code)
    if hint:
        err.print(Text(f"hint: {hint}", style="dim"), soft_wrap=True)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="imagebuilder",
            standalone_mode=False,
        )
    except typer.TyperException as exc:
        # Usage errors: typer would exit 2, which here means "the build ended in error".
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            _report(exc.message, "usage")
        return ExitCode.CLIENT
    except typer.Abort:
        return ExitCode.INTERRUPTED
    except ClientError as exc:
        _report(exc.message, exc.code)
        return ExitCode.CLIENT
    except ConfigError as exc:
        _report(str(exc), "config_invalid")
        return ExitCode.CLIENT
    except PackingError as exc:
        _report(str(exc), "packing_failed")
        return ExitCode.CLIENT
    except BrokenPipeError:
        # The reader went away (`imagebuilder logs ID | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.CLIENT
    except OSError as exc:
        _report(f"{exc.strerror or exc} ({exc.filename or 'no file'})", "os_error")
        return ExitCode.CLIENT
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        _report(f"unexpected failure: {type(exc).__name__}: {exc}", "internal")
        _console(stderr=True).print(
            Text(f"hint: set {DEBUG_ENV}=1 to see the traceback, and report it", style="dim")
        )
        return ExitCode.CLIENT
    return result if isinstance(result, int) else ExitCode.OK


def main() -> None:
    """Console-script entry point (`imagebuilder`)."""
    sys.exit(run())

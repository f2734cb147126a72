"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright,
against the running service with a real worker."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright
from sqlalchemy import update

from core.access.caller import Caller
from core.builds.options import BuildOptions
from core.builds.service import create_build
from core.db import make_engine, session_scope, utcnow
from core.models import Build, LogLine
from core.status import BuildStatus
from tests.conftest import ROOT, require, zip_project
from tests.e2e.conftest import Service
from tests.factories import stored_source

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"
HOSTILE = "<img src=x onerror=alert(1)>"
BUILD_SECONDS = 600
TERMINAL = {"succeeded", "failed", "error", "timed_out", "cancelled"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require(CHROMIUM.is_file(), f"Chromium at {CHROMIUM} (the Debian package 'chromium')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


class Problems:
    """What the page complained about: console errors (CSP violations among them), uncaught
    exceptions, and dialogs (an injected alert() would open one)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console: {message.text}")

    def page_error(self, error: Exception) -> None:
        self.seen.append(f"page error: {error}")

    def dialog(self, dialog: Dialog) -> None:
        self.seen.append(f"dialog: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Problems]]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    opened = context.new_page()
    problems = Problems()
    opened.on("console", problems.console)
    opened.on("pageerror", problems.page_error)
    opened.on("dialog", problems.dialog)
    yield opened, problems
    context.close()


def sign_in(page: Page, service: Service) -> None:
    page.goto(f"{service.url}/login")
    page.fill("#token", service.token)
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url(f"{service.url}/")


def drop_zip(page: Page, name: str, data: bytes) -> None:
    """Drag a zip onto the drop zone, as a person dropping a file from their desktop."""
    transfer = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "application/zip" }));
            return transfer;
        }""",
        [name, base64.b64encode(data).decode()],
    )
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def observe(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => ({
            status: document.querySelector("#summary").dataset.status,
            lines: document.querySelectorAll("#log .line").length,
        })"""
    )
    return state


def remove_image(service: Service, tag: str) -> None:
    subprocess.run(
        [service.settings.docker_cli, "rmi", "--force", tag],
        capture_output=True,
        check=False,
        timeout=60,
    )


class TestDashboard:
    def test_upload_watch_the_log_and_see_it_succeed(
        self, service: Service, page: tuple[Page, Problems]
    ) -> None:
        browser_page, problems = page
        tag = "imagebuilder-e2e/dashboard:1"
        # A second build alongside, so the list shows more than one outcome.
        with service.client() as client:
            response = client.post(
                "/api/v1/builds",
                files={"source": ("failing_test.zip", zip_project("failing_test"))},
            )
            assert response.status_code == 202, response.text
            failing = response.json()["id"]
        try:
            sign_in(browser_page, service)
            drop_zip(browser_page, "passing.zip", zip_project("passing"))
            assert "passing.zip" in browser_page.inner_text("#dz-file")
            browser_page.click("#upload-options summary")
            browser_page.fill("input[name=tag]", tag)
            browser_page.click("#upload-button")
            browser_page.wait_for_url(re.compile(r".*/builds/b_[0-9A-Za-z]+$"), timeout=60_000)
            build_id = browser_page.url.rsplit("/", 1)[-1]

            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + BUILD_SECONDS
            while time.monotonic() < deadline:
                seen.append(observe(browser_page))
                if seen[-1]["status"] in TERMINAL:
                    break
                time.sleep(0.5)
            final = seen[-1]
            assert final["status"] == "succeeded", f"{seen[-5:]}\n{service.logs()}"
            # The log filled in while the build ran, not only once it was over.
            browser_page.wait_for_selector("#log-state[data-state=ended]", timeout=30_000)
            total = observe(browser_page)["lines"]
            assert any(0 < s["lines"] < total for s in seen if s["status"] == "running"), seen

            log_text = browser_page.inner_text("#log")
            assert "4 passed, 1 skipped" in log_text
            assert browser_page.inner_text("#summary .badge") == "succeeded"
            assert browser_page.locator("#log .line.stream-test").count() > 0
            assert browser_page.locator("#log .line.stream-system").count() > 0
            phases = browser_page.locator(".phases .phase-name").all_inner_texts()
            # Later phases (scanning, exporting) come and go with the service's features.
            assert phases[:3] == ["preparing", "building", "testing"]
            assert "4 passed" in browser_page.inner_text(".counts")
            assert tag in browser_page.inner_text("#summary")
            assert re.search(r"\d+(\.\d)? MB", browser_page.inner_text("#summary"))

            self.check_auto_scroll(browser_page)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            browser_page.screenshot(path=str(SCREENSHOTS / "detail.png"), full_page=True)

            browser_page.click("#dockerfile-panel summary")
            browser_page.wait_for_function(
                "() => document.querySelector('#dockerfile').textContent.includes('FROM')"
            )

            with service.client() as client:
                deadline = time.monotonic() + BUILD_SECONDS
                while client.get(f"/api/v1/builds/{failing}").json()["status"] not in TERMINAL:
                    assert time.monotonic() < deadline, service.logs()
                    time.sleep(0.5)
            browser_page.goto(f"{service.url}/")
            row = browser_page.locator(f"tr[data-build-id='{build_id}']")
            assert row.locator(".badge").inner_text() == "succeeded"
            assert tag in row.inner_text()
            failed_row = browser_page.locator(f"tr[data-build-id='{failing}']")
            assert failed_row.locator(".badge").inner_text() == "failed"
            browser_page.screenshot(path=str(SCREENSHOTS / "list.png"), full_page=True)
            assert problems.seen == []
        finally:
            remove_image(service, tag)

    @staticmethod
    def check_auto_scroll(page: Page) -> None:
        """At the bottom it follows; scrolled up it stops and offers to follow again."""
        at_bottom = "(box) => box.scrollHeight - box.scrollTop - box.clientHeight <= 24"
        log = page.locator("#log")
        if not log.evaluate("(box) => box.scrollHeight > box.clientHeight"):
            return
        assert log.evaluate(at_bottom)
        log.evaluate("(box) => { box.scrollTop = 0; }")
        page.wait_for_selector("#follow", state="visible")
        page.click("#follow")
        page.wait_for_selector("#follow", state="hidden")
        assert log.evaluate(at_bottom)

    def test_the_list_refreshes_without_a_reload(
        self, service: Service, page: tuple[Page, Problems]
    ) -> None:
        browser_page, problems = page
        sign_in(browser_page, service)
        browser_page.evaluate("() => { window.__sameDocument = true; }")
        build_id = hostile_build(service, [])
        row = browser_page.locator(f"tr[data-build-id='{build_id}']")
        row.wait_for(timeout=15_000)
        assert browser_page.evaluate("() => window.__sameDocument === true")
        assert problems.seen == []

    def test_hostile_log_lines_and_fields_render_as_text(
        self, service: Service, page: tuple[Page, Problems]
    ) -> None:
        browser_page, problems = page
        lines = [
            ("build", "\x1b[1;31mred and bold\x1b[0m then plain"),
            ("build", "\x1b]0;window title\x07after an OSC"),
            ("build", "\x1b[2J\x1b[1;1H\x1b[Kcursor moves dropped"),
            ("test", HOSTILE),
            ("test", "\x1b]8;;https://example.invalid\x1b\\a link\x1b]8;;\x1b\\ text"),
            ("system", "\x1b[38;5;196m256-colour red\x1b[0m and \x1b[48;2;0;200;0mrgb\x1b[m"),
        ]
        build_id = hostile_build(service, lines)
        sign_in(browser_page, service)
        browser_page.goto(f"{service.url}/builds/{build_id}")
        browser_page.wait_for_selector("#log-state[data-state=ended]", timeout=30_000)
        texts = browser_page.locator("#log .line .txt").all_inner_texts()
        assert texts == [
            "red and bold then plain",
            "after an OSC",
            "cursor moves dropped",
            HOSTILE,
            "a link text",
            "256-colour red and rgb",
        ]
        assert browser_page.locator("#log img, #summary img, #log a").count() == 0
        first = browser_page.locator("#log .line").first.locator("span.ansi-fg-1")
        assert first.inner_text() == "red and bold"
        assert "ansi-bold" in (first.get_attribute("class") or "")
        assert browser_page.locator("#log span.ansi-fg-9, #log span.ansi-fg-1").count() == 2
        assert browser_page.locator("#log span.ansi-bg-2, #log span.ansi-bg-10").count() == 1
        assert browser_page.inner_text(".alert-message") == HOSTILE
        assert browser_page.locator(".line.stream-test").count() == 2
        browser_page.click("#dockerfile-panel summary")
        browser_page.wait_for_function(
            "() => document.querySelector('#dockerfile').textContent.includes('RUN')"
        )
        assert HOSTILE in browser_page.inner_text("#dockerfile")
        assert browser_page.locator("#dockerfile img").count() == 0
        assert problems.seen == []

    def test_the_ansi_parser_drops_every_non_sgr_escape(
        self, service: Service, page: tuple[Page, Problems]
    ) -> None:
        browser_page, problems = page
        sign_in(browser_page, service)
        cases = {
            "plain": "plain",
            "\x1b[31mred": "red",
            "a\x1b[5Ab": "ab",
            "\x1b[?25lhidden cursor\x1b[?25h": "hidden cursor",
            "\x1b]2;title\x1b\\x": "x",
            "unterminated \x1b]0;osc to the end": "unterminated ",
            "\x1bPdcs string\x1b\\y": "y",
            "\x1b(Bcharset": "charset",
            "bell\x07 and back\x08space": "bell and backspace",
            "lone escape \x1b": "lone escape ",
            "\x9b31mc1 csi": "c1 csi",
            "tab\tkept": "tab\tkept",
        }
        results = browser_page.evaluate(
            """async (inputs) => {
                const { parseAnsi } = await import("/ui/static/ansi.js");
                return inputs.map((line) => parseAnsi(line));
            }""",
            list(cases),
        )
        for (given, visible), segments in zip(cases.items(), results, strict=True):
            assert "".join(s["text"] for s in segments) == visible, repr(given)
        red = results[1][0]
        assert red["classes"] == ["ansi-fg-1"]
        assert problems.seen == []


def hostile_build(service: Service, lines: list[tuple[str, str]]) -> str:
    """A finished build written straight into the service's database, with hostile fields and
    the given log lines, owned by the admin the e2e service bootstraps."""
    engine = make_engine(service.settings.sqlalchemy_url)
    try:
        with session_scope(engine) as session:
            build = create_build(
                session,
                caller=Caller("admin"),
                source=stored_source(filename=HOSTILE + ".zip"),
                options=BuildOptions(),
                namespace=service.settings.image_namespace,
            )
            build_id = build.id
            now = utcnow()
            for seq, (stream, text) in enumerate(lines, start=1):
                session.add(LogLine(build_id=build_id, seq=seq, at=now, stream=stream, text=text))
            session.execute(
                update(Build)
                .where(Build.id == build_id)
                .values(
                    status=BuildStatus.FAILED,
                    started_at=now,
                    finished_at=now,
                    log_lines=len(lines),
                    error_code="build_failed",
                    error_message=HOSTILE,
                    dockerfile=f"FROM scratch\nRUN echo '{HOSTILE}'\n",
                )
            )
    finally:
        engine.dispose()
    return build_id

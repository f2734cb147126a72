"""The dashboard's formatters and its session cookie / CSRF token (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.web.session import DashboardSession, valid_token_text
from app.web.view import ago, build_args_field, build_seconds, duration, filesize, timeline
from core.builds.resources import BuildOut, PhaseOut
from core.errors import InvalidOption
from core.status import BuildStatus, Phase

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def build(status: BuildStatus, *, started: bool = True, finished: bool = False) -> BuildOut:
    phases = [
        PhaseOut(
            phase=Phase.PREPARING,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=3),
            duration_seconds=3.0,
        ),
        PhaseOut(
            phase=Phase.BUILDING,
            started_at=T0 + timedelta(seconds=3),
            finished_at=T0 + timedelta(seconds=40) if finished else None,
            duration_seconds=37.0 if finished else None,
        ),
    ]
    return BuildOut.model_validate(
        {
            "id": "b_x",
            "status": status,
            "phase": None if finished else Phase.BUILDING,
            "created_at": T0,
            "started_at": T0 if started else None,
            "finished_at": T0 + timedelta(seconds=40) if finished else None,
            "source": {"filename": "p.zip", "size_bytes": 1, "sha256": "0" * 64, "files": 1},
            "options": {
                "tag": None,
                "python_version": None,
                "run_tests": True,
                "test_command": None,
                "dockerfile": None,
                "context_dir": None,
                "build_args": {},
            },
            "image": None,
            "tests": None,
            "error": None,
            "links": {
                "self": "/",
                "logs": "/",
                "dockerfile": "/",
                "sbom": "/",
                "provenance": "/",
                "image": "/",
            },
            "phases": phases if started else [],
            "plan": None,
            "attempts": 1,
            "cancel_requested": False,
            "rebuild_of": None,
            "log": {"lines": 0, "bytes": 0, "truncated": False},
            "base_image": None,
            "base_image_digest": None,
            "vulnerabilities": None,
            "push": None,
        }
    )


class TestDuration:
    @pytest.mark.parametrize(
        ("seconds", "shown"),
        [
            (None, "—"),
            (0.42, "0.4s"),
            (9.96, "10.0s"),
            (42.4, "42s"),
            (65, "1m 05s"),
            (3599.6, "1h 00m"),
            (3 * 3600 + 125, "3h 02m"),
        ],
    )
    def test_formats_seconds_for_people(self, seconds: float | None, shown: str) -> None:
        assert duration(seconds) == shown


class TestAgo:
    @pytest.mark.parametrize(
        ("seconds", "shown"),
        [
            (-3, "0s ago"),
            (12.7, "12s ago"),
            (61, "1m ago"),
            (7300, "2h ago"),
            (90000, "2026-11-27"),
        ],
    )
    def test_says_how_long_ago_then_the_date(self, seconds: float, shown: str) -> None:
        assert ago(T0, T0 + timedelta(seconds=seconds)) == shown


class TestFilesize:
    @pytest.mark.parametrize(
        ("size", "shown"),
        [(None, "—"), (0, "0 B"), (999, "999 B"), (1234, "1.2 kB"), (123_456_789, "123.5 MB")],
    )
    def test_uses_decimal_units_like_docker(self, size: int | None, shown: str) -> None:
        assert filesize(size) == shown

    def test_stops_at_gigabytes(self) -> None:
        assert filesize(5_000_000_000_000) == "5000.0 GB"


class TestBuildSeconds:
    def test_a_running_build_counts_up_to_now(self) -> None:
        assert build_seconds(build(BuildStatus.RUNNING), T0 + timedelta(seconds=12)) == 12

    def test_a_finished_build_lasts_from_start_to_end(self) -> None:
        done = build(BuildStatus.SUCCEEDED, finished=True)
        assert build_seconds(done, T0 + timedelta(hours=5)) == 40

    def test_a_queued_build_has_no_duration(self) -> None:
        assert build_seconds(build(BuildStatus.QUEUED, started=False), T0) is None


class TestTimeline:
    def test_the_phase_under_way_counts_up_and_is_marked_current(self) -> None:
        steps = timeline(build(BuildStatus.RUNNING), T0 + timedelta(seconds=10))
        assert [(row.name, row.seconds, row.current) for row in steps.rows] == [
            ("preparing", 3.0, False),
            ("building", 7.0, True),
        ]
        assert steps.total == 10

    def test_a_finished_build_has_no_current_phase(self) -> None:
        steps = timeline(build(BuildStatus.FAILED, finished=True), T0 + timedelta(hours=1))
        assert not any(row.current for row in steps.rows)
        assert steps.total == 40


class TestBuildArgsField:
    def test_turns_name_value_lines_into_the_api_json_object(self) -> None:
        text = "A=1\n\n B = two words \nURL=https://x/?a=b=c\n"
        assert json.loads(build_args_field(text)) == {
            "A": "1",
            "B": " two words ",
            "URL": "https://x/?a=b=c",
        }

    def test_passes_a_json_object_and_empty_text_through(self) -> None:
        assert build_args_field(' {"A": "1"} ') == '{"A": "1"}'
        assert build_args_field("  \n") == ""

    def test_rejects_a_line_without_equals_sign(self) -> None:
        with pytest.raises(InvalidOption, match="line 2"):
            build_args_field("A=1\nnonsense")


class TestDashboardSession:
    def test_round_trips_through_the_cookie_value(self) -> None:
        session = DashboardSession.new("ib_abc_secret")
        assert DashboardSession.parse(session.cookie_value) == session

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "",
            "no-dot-here",
            "short.ib_abc_secret",
            "x" * 43 + ".",
            "x" * 43 + ".has space",
            "x" * 43 + "." + "t" * 600,
        ],
    )
    def test_refuses_malformed_cookies(self, value: str | None) -> None:
        assert DashboardSession.parse(value) is None

    def test_the_csrf_token_is_bound_to_token_and_login(self) -> None:
        first = DashboardSession.new("ib_abc_secret")
        again = DashboardSession.new("ib_abc_secret")
        other = DashboardSession(nonce=first.nonce, token="ib_abc_other")
        assert first.accepts(first.csrf_token)
        assert not first.accepts(again.csrf_token)
        assert not first.accepts(other.csrf_token)
        assert not first.accepts(None)
        assert not first.accepts("")

    def test_the_csrf_token_does_not_reveal_the_api_token(self) -> None:
        session = DashboardSession.new("ib_abc_secret")
        assert "secret" not in session.csrf_token
        assert session.token not in session.csrf_token


class TestValidTokenText:
    @pytest.mark.parametrize("token", ["ib_abc_def", "x", "!~"])
    def test_accepts_printable_ascii(self, token: str) -> None:
        assert valid_token_text(token)

    @pytest.mark.parametrize("token", ["", "a b", "tab\there", "é", "x" * 513])
    def test_refuses_anything_else(self, token: str) -> None:
        assert not valid_token_text(token)

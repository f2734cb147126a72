"""core.status: the table of allowed build transitions."""

from __future__ import annotations

import pytest

from core.status import ALLOWED, TERMINAL, BuildStatus, sources_of

NON_TERMINAL = [status for status in BuildStatus if status not in TERMINAL]


def reachable_from(start: BuildStatus) -> set[BuildStatus]:
    """Every status some sequence of allowed transitions leads to from `start`."""
    seen: set[BuildStatus] = set()
    frontier = [start]
    while frontier:
        for target in ALLOWED[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


class TestTransitionTable:
    def test_every_status_has_a_row(self) -> None:
        assert set(ALLOWED) == set(BuildStatus)

    def test_terminal_statuses(self) -> None:
        assert {status for status in BuildStatus if status.terminal} == {
            BuildStatus.SUCCEEDED,
            BuildStatus.FAILED,
            BuildStatus.ERROR,
            BuildStatus.TIMED_OUT,
            BuildStatus.CANCELLED,
        }

    @pytest.mark.parametrize("status", sorted(TERMINAL))
    def test_terminal_statuses_have_no_outgoing_transitions(self, status: BuildStatus) -> None:
        assert ALLOWED[status] == frozenset()

    @pytest.mark.parametrize("status", NON_TERMINAL)
    def test_every_non_terminal_status_can_reach_a_terminal_one(self, status: BuildStatus) -> None:
        assert reachable_from(status) & TERMINAL

    @pytest.mark.parametrize("status", NON_TERMINAL)
    def test_every_non_terminal_status_can_be_cancelled(self, status: BuildStatus) -> None:
        assert BuildStatus.CANCELLED in ALLOWED[status]

    def test_queued_can_be_cancelled_before_it_runs(self) -> None:
        assert BuildStatus.CANCELLED in ALLOWED[BuildStatus.QUEUED]

    def test_running_can_be_handed_back_to_the_queue(self) -> None:
        assert BuildStatus.QUEUED in ALLOWED[BuildStatus.RUNNING]

    @pytest.mark.parametrize(
        "outcome", [BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.TIMED_OUT]
    )
    def test_an_outcome_needs_a_run(self, outcome: BuildStatus) -> None:
        assert outcome not in ALLOWED[BuildStatus.QUEUED]
        assert outcome in ALLOWED[BuildStatus.RUNNING]

    def test_no_status_transitions_to_itself(self) -> None:
        assert all(status not in targets for status, targets in ALLOWED.items())


class TestSourcesOf:
    @pytest.mark.parametrize(
        ("target", "sources"),
        [
            (BuildStatus.QUEUED, {BuildStatus.RUNNING}),
            (BuildStatus.RUNNING, {BuildStatus.QUEUED}),
            (BuildStatus.SUCCEEDED, {BuildStatus.RUNNING}),
            (BuildStatus.FAILED, {BuildStatus.RUNNING}),
            (BuildStatus.TIMED_OUT, {BuildStatus.RUNNING}),
            (BuildStatus.ERROR, {BuildStatus.QUEUED, BuildStatus.RUNNING}),
            (BuildStatus.CANCELLED, {BuildStatus.QUEUED, BuildStatus.RUNNING}),
        ],
    )
    def test_lists_the_statuses_that_may_move_to_target(
        self, target: BuildStatus, sources: set[BuildStatus]
    ) -> None:
        assert sources_of(target) == sources

    @pytest.mark.parametrize("target", list(BuildStatus))
    def test_agrees_with_the_table(self, target: BuildStatus) -> None:
        assert sources_of(target) == {s for s in BuildStatus if target in ALLOWED[s]}

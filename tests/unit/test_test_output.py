"""core.results.test_output: counts from unittest's (and Django's) console summary."""

from __future__ import annotations

from core.results.junit import TestCounts
from core.results.test_output import pytest_counts, unittest_counts


class TestUnittestCounts:
    def test_ok_with_skips(self) -> None:
        lines = [
            "test_a (t.T.test_a) ... ok",
            "",
            "-" * 70,
            "Ran 3 tests in 0.001s",
            "",
            "OK (skipped=1)",
        ]

        assert unittest_counts(lines) == TestCounts(passed=2, failed=0, errors=0, skipped=1)

    def test_failures_and_errors(self) -> None:
        lines = [
            "Ran 7 tests in 0.010s",
            "",
            "FAILED (failures=2, errors=1, skipped=1, expected failures=1, unexpected successes=1)",
        ]

        assert unittest_counts(lines) == TestCounts(passed=1, failed=3, errors=1, skipped=2)

    def test_single_test(self) -> None:
        assert unittest_counts(["Ran 1 test in 0.000s", "", "OK"]) == TestCounts(1, 0, 0, 0)

    def test_no_summary(self) -> None:
        assert unittest_counts(["collected 0 items"]) is None
        assert unittest_counts(["Ran 2 tests in 0.1s", "", "something else"]) is None


class TestPytestSummary:
    def test_counts_from_the_last_summary_line(self) -> None:
        lines = [
            "tests/test_a.py ..F",
            "== 1 failed, 1376 passed, 8 skipped, 1 xfailed, 3 warnings in 232.15s (0:03:52) ==",
        ]

        assert pytest_counts(lines) == TestCounts(passed=1376, failed=1, errors=0, skipped=9)

    def test_errors_and_no_summary(self) -> None:
        assert pytest_counts(["===== 2 errors in 0.12s ====="]) == TestCounts(0, 0, 2, 0)
        assert pytest_counts(["Ran 3 tests in 0.1s", "OK"]) is None

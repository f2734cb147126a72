"""Test counts from a runner's console output, for runners that write no JUnit report.

unittest (and Django's runner, which is unittest's) ends with:

    Ran 3 tests in 0.001s
    <blank>
    OK (skipped=1)            or    FAILED (failures=1, errors=2, skipped=1)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.results.junit import TestCounts

# pytest's last line: "==== 1 failed, 1376 passed, 9 skipped, 1 xfailed in 232.15s (0:03:52) ===="
_PYTEST_SUMMARY = re.compile(r"^=+ (?P<parts>.+?) in [\d.]+s(?: \([\d:]+\))? =+$")
_PYTEST_PART = re.compile(r"^(\d+) (\w+)$")
_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s$")
_RESULT = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$")


def unittest_counts(lines: Sequence[str]) -> TestCounts | None:
    """Counts from the last unittest summary in `lines`, or None without one."""
    for index in range(len(lines) - 1, -1, -1):
        ran = _RAN.match(lines[index].strip())
        if ran is None:
            continue
        details: dict[str, int] = {}
        for line in lines[index + 1 : index + 4]:
            result = _RESULT.match(line.strip())
            if result is None:
                continue
            for part in (result.group(2) or "").split(","):
                key, _, value = part.strip().partition("=")
                if value.isdigit():
                    details[key] = int(value)
            break
        else:
            return None
        total = int(ran.group(1))
        failed = details.get("failures", 0) + details.get("unexpected successes", 0)
        errors = details.get("errors", 0)
        skipped = details.get("skipped", 0) + details.get("expected failures", 0)
        return TestCounts(
            passed=max(0, total - failed - errors - skipped),
            failed=failed,
            errors=errors,
            skipped=skipped,
        )
    return None


def pytest_counts(lines: Sequence[str]) -> TestCounts | None:
    """Counts from pytest's final summary line in `lines` (when its JUnit report is unreadable),
    or None without one. xfailed counts as skipped, xpassed as passed, as in the JUnit report."""
    for line in reversed(lines):
        summary = _PYTEST_SUMMARY.match(line.strip())
        if summary is None:
            continue
        found: dict[str, int] = {}
        for part in summary.group("parts").split(","):
            match = _PYTEST_PART.match(part.strip())
            if match is not None:
                found[match.group(2)] = int(match.group(1))
        if not found and "no tests ran" not in summary.group("parts"):
            continue
        return TestCounts(
            passed=found.get("passed", 0) + found.get("xpassed", 0),
            failed=found.get("failed", 0),
            errors=found.get("error", 0) + found.get("errors", 0),
            skipped=found.get("skipped", 0) + found.get("xfailed", 0),
        )
    return None

"""Test counts from a JUnit XML report (pytest's `--junitxml`, and most other runners')."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException


@dataclass(frozen=True)
class TestCounts:
    __test__ = False  # not a pytest test class

    passed: int
    failed: int
    errors: int
    skipped: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped


def parse_junit(xml: str) -> TestCounts | None:
    """Count test cases by outcome; None when the report is missing or unreadable.

    Counts the <testcase> elements rather than trusting the suite attributes, which runners fill
    in differently (pytest counts collection errors as suite-level errors with a testcase each).
    """
    try:
        root = ElementTree.fromstring(xml)
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    passed = failed = errors = skipped = 0
    for case in root.iter("testcase"):
        outcome = _outcome(case)
        if outcome == "failed":
            failed += 1
        elif outcome == "error":
            errors += 1
        elif outcome == "skipped":
            skipped += 1
        else:
            passed += 1
    return TestCounts(passed=passed, failed=failed, errors=errors, skipped=skipped)


def _outcome(case: Element) -> str:
    children = {child.tag for child in case}
    if "error" in children:
        return "error"
    if "failure" in children:
        return "failed"
    if "skipped" in children:
        return "skipped"
    return "passed"


def summarize(counts: TestCounts) -> str:
    """A one-line human summary such as '2 failed, 10 passed, 1 skipped'."""
    parts = [
        f"{number} {label}"
        for number, label in (
            (counts.failed, "failed"),
            (counts.errors, "errors" if counts.errors != 1 else "error"),
            (counts.passed, "passed"),
            (counts.skipped, "skipped"),
        )
        if number
    ]
    return ", ".join(parts) or "no tests ran"

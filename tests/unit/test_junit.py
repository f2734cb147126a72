"""core.results.junit: counting real pytest JUnit reports, and refusing anything else."""

from __future__ import annotations

import pytest

from core.results.junit import TestCounts, parse_junit, summarize

# Written by pytest 8 (`--junitxml`, default xunit2 family) for the test files named in each.
PASSING = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite '
    'name="pytest" errors="0" failures="0" skipped="0" tests="2" time="0.026" '
    'timestamp="2026-11-27T09:10:05.396332+00:00" hostname="vm"><testcase classname="test_ok" '
    'name="test_one" time="0.000" /><testcase classname="test_ok" name="test_two" time="0.000" />'
    "</testsuite></testsuites>"
)

MIXED = """\
<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" \
errors="1" failures="1" skipped="1" tests="4" time="0.094" \
timestamp="2026-11-27T09:10:07.814756+00:00" hostname="vm"><testcase classname="test_mixed" \
name="test_passes" time="0.001" /><testcase classname="test_mixed" name="test_fails" \
time="0.001"><failure message="assert 1 == 2">def test_fails():
&gt;       assert 1 == 2
E       assert 1 == 2

test_mixed.py:11: AssertionError</failure></testcase><testcase classname="test_mixed" \
name="test_errors" time="0.000"><error message="failed on setup with &quot;RuntimeError: \
fixture broke&quot;">@pytest.fixture
    def broken():
&gt;       raise RuntimeError("fixture broke")
E       RuntimeError: fixture broke

test_mixed.py:5: RuntimeError</error></testcase><testcase classname="test_mixed" \
name="test_skipped" time="0.000"><skipped type="pytest.skip" message="not today">\
/tmp/junitgen/fail/test_mixed.py:16: not today</skipped></testcase></testsuite></testsuites>"""

COLLECTION_ERROR = """\
<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" \
errors="1" failures="0" skipped="0" tests="1" time="0.245" \
timestamp="2026-11-27T09:10:10.413401+00:00" hostname="vm"><testcase classname="" \
name="test_coll" time="0.000"><error message="collection failure">ImportError while importing \
test module '/tmp/junitgen/coll/test_coll.py'.
Hint: make sure your test modules/packages have valid Python names.
Traceback:
/root/.pyenv/versions/3.11.7/lib/python3.11/importlib/__init__.py:126: in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
test_coll.py:1: in &lt;module&gt;
    from app import broken
E   ImportError: cannot import name 'broken' from 'app' (unknown location)</error></testcase>\
</testsuite></testsuites>"""

# pytest before 5.1 (and many other runners) write a bare <testsuite> with no wrapper; this one
# also carries an xfail, which pytest reports as skipped.
BARE_TESTSUITE = """\
<?xml version="1.0" encoding="utf-8"?>
<testsuite errors="0" failures="1" name="pytest" skipped="1" tests="3" time="0.051">
  <testcase classname="tests.test_calc" file="tests/test_calc.py" line="3" name="test_add" \
time="0.001"/>
  <testcase classname="tests.test_calc" file="tests/test_calc.py" line="7" \
name="test_subtract" time="0.001">
    <failure message="assert 8 == 2">assert 8 == 2</failure>
    <system-out>subtracting</system-out>
  </testcase>
  <testcase classname="tests.test_calc" file="tests/test_calc.py" line="11" name="test_div" \
time="0.001">
    <skipped message="expected fail: division is next" type="pytest.xfail"></skipped>
  </testcase>
</testsuite>
"""

BILLION_LAUGHS = """\
<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<testsuite name="lolz"><testcase name="&lol4;"/></testsuite>
"""

EXTERNAL_ENTITY = """\
<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuite name="x"><testcase name="&secret;"/></testsuite>
"""


class TestParseJunit:
    def test_counts_a_passing_run(self) -> None:
        assert parse_junit(PASSING) == TestCounts(passed=2, failed=0, errors=0, skipped=0)

    def test_counts_failures_errors_and_skips(self) -> None:
        counts = parse_junit(MIXED)

        assert counts is not None
        assert counts == TestCounts(passed=1, failed=1, errors=1, skipped=1)
        assert counts.total == 4

    def test_counts_a_collection_error_as_an_error(self) -> None:
        assert parse_junit(COLLECTION_ERROR) == TestCounts(passed=0, failed=0, errors=1, skipped=0)

    def test_reads_a_bare_testsuite(self) -> None:
        assert parse_junit(BARE_TESTSUITE) == TestCounts(passed=1, failed=1, errors=0, skipped=1)

    def test_counts_cases_across_several_suites(self) -> None:
        inner = PASSING.split('<testsuites name="pytest tests">', 1)[1].removesuffix(
            "</testsuites>"
        )
        xml = f"<testsuites>{inner}{inner}</testsuites>"

        assert parse_junit(xml) == TestCounts(passed=4, failed=0, errors=0, skipped=0)

    def test_counts_cases_not_suite_attributes(self) -> None:
        xml = '<testsuite tests="99" failures="42"><testcase name="a"/></testsuite>'

        assert parse_junit(xml) == TestCounts(passed=1, failed=0, errors=0, skipped=0)

    def test_an_error_outweighs_a_failure_in_the_same_case(self) -> None:
        # pytest writes both when a test fails and its teardown errors too.
        xml = (
            '<testsuite><testcase name="a"><failure message="f"/>'
            '<error message="teardown"/></testcase></testsuite>'
        )

        assert parse_junit(xml) == TestCounts(passed=0, failed=0, errors=1, skipped=0)

    def test_empty_suite_counts_nothing(self) -> None:
        counts = parse_junit('<testsuites><testsuite name="pytest" tests="0"/></testsuites>')

        assert counts is not None
        assert counts == TestCounts(passed=0, failed=0, errors=0, skipped=0)
        assert counts.total == 0

    @pytest.mark.parametrize(
        "garbage",
        [
            "",
            "not xml at all",
            "<testsuite><testcase></testsuite>",
            PASSING[: len(PASSING) // 2],
            '<?xml version="1.0"?><html><body>500</body></html>',
            "<testcase name='a'/>",
        ],
    )
    def test_returns_none_for_garbage(self, garbage: str) -> None:
        assert parse_junit(garbage) is None

    @pytest.mark.parametrize("hostile", [BILLION_LAUGHS, EXTERNAL_ENTITY])
    def test_returns_none_for_entity_declarations(self, hostile: str) -> None:
        assert parse_junit(hostile) is None


class TestSummarize:
    @pytest.mark.parametrize(
        ("counts", "expected"),
        [
            (
                TestCounts(passed=10, failed=2, errors=0, skipped=1),
                "2 failed, 10 passed, 1 skipped",
            ),
            (TestCounts(passed=0, failed=0, errors=1, skipped=0), "1 error"),
            (TestCounts(passed=3, failed=1, errors=2, skipped=0), "1 failed, 2 errors, 3 passed"),
            (TestCounts(passed=5, failed=0, errors=0, skipped=0), "5 passed"),
            (TestCounts(passed=0, failed=0, errors=0, skipped=0), "no tests ran"),
        ],
    )
    def test_one_line_summary(self, counts: TestCounts, expected: str) -> None:
        assert summarize(counts) == expected

    def test_summarizes_a_parsed_report(self) -> None:
        counts = parse_junit(MIXED)

        assert counts is not None
        assert summarize(counts) == "1 failed, 1 error, 1 passed, 1 skipped"

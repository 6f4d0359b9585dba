"""The two-tier order of tests/tiers.py: fast tests first; a fast failure skips the slow tier."""

from __future__ import annotations

import textwrap

SUITE = textwrap.dedent(
    """
    import pytest

    @pytest.mark.slow
    def test_slow_one():
        pass

    def test_fast_one():
        assert FAST_OK

    @pytest.mark.slow
    def test_slow_two():
        pass

    def test_fast_two():
        pass
    """
)
INI = "[pytest]\nmarkers =\n    slow: slow\n"


def run(pytester, fast_ok: bool):
    pytester.makeini(INI)
    pytester.makepyfile(test_suite=f"FAST_OK = {fast_ok}\n" + SUITE)
    return pytester.runpytest("-p", "tiers", "-v", "-rs", "-p", "no:randomly")


def test_fast_tests_run_first_and_then_every_slow_test(pytester):
    result = run(pytester, fast_ok=True)
    result.assert_outcomes(passed=4)
    order = [line.split("::")[1].split()[0] for line in result.outlines if "::test_" in line and "PASSED" in line]
    assert order == ["test_fast_one", "test_fast_two", "test_slow_one", "test_slow_two"]


def test_a_fast_failure_skips_the_slow_tier_saying_why(pytester):
    result = run(pytester, fast_ok=False)
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*slow tier not run: the fast-tier test *test_fast_one failed; fix that first*"])

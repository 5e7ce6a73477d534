"""bounded.run: deadlines that a hung child cannot stretch, and that a slow start does not eat."""
import time

import pytest

from nfskit import bounded

pytestmark = [pytest.mark.unit]


def sh(script):
    return ["sh", "-c", script]


def test_a_child_past_its_deadline_is_killed_and_reported():
    start = time.monotonic()
    outcome = bounded.run(sh("echo write; sleep 30"), timeout=0.5)
    assert outcome.timed_out and outcome.started and not outcome.ok
    assert outcome.stdout == "write\n" and time.monotonic() - start < 3


def test_without_a_startup_allowance_a_slow_start_counts_against_the_deadline():
    outcome = bounded.run(sh("sleep 1.5; echo write; echo done"), timeout=0.5)
    assert outcome.timed_out


def test_with_a_startup_allowance_the_deadline_counts_from_the_first_line():
    outcome = bounded.run(sh("sleep 1.5; echo write; echo done"), timeout=0.5, startup_timeout=10)
    assert outcome.ok and outcome.stdout == "write\ndone\n"
    assert outcome.elapsed < 0.5  # timed from the first line, not from the start


def test_after_the_first_line_the_deadline_still_holds():
    start = time.monotonic()
    outcome = bounded.run(sh("sleep 1; echo write; sleep 30"), timeout=0.5, startup_timeout=10)
    assert outcome.timed_out and outcome.started and outcome.stdout == "write\n"
    assert time.monotonic() - start < 4


def test_a_child_that_never_starts_is_killed_at_the_startup_allowance():
    start = time.monotonic()
    outcome = bounded.run(sh("sleep 30"), timeout=10, startup_timeout=0.5)
    assert outcome.timed_out and not outcome.started
    assert time.monotonic() - start < 3


def test_a_child_that_exits_without_a_line_reports_its_status_and_stderr():
    outcome = bounded.run(sh("echo broken >&2; exit 3"), timeout=5, startup_timeout=5)
    assert (outcome.returncode, outcome.stderr, outcome.timed_out) == (3, "broken\n", False)

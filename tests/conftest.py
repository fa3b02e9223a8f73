"""Shared test helpers: polling for eventual state (never for timing), paths, skips that CI refuses."""

import datetime as dt
import os
import pathlib
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
T = TypeVar("T")


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip for a missing tool on a developer's machine; under CI (``$CI`` set) fail instead.

    A skipped test proves nothing, and CI is where the suite must prove everything.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (a skip is a failure under CI, which has CI={os.environ['CI']!r})", pytrace=False)
    pytest.skip(reason)


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``.

    This waits for the cluster to converge; it asserts nothing about how fast.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last value: {last!r}")


def clock_past(when: dt.datetime, what: str = "") -> None:
    """Wait until the wall clock is past ``when``: for a condition that *is* a time (a level came due).

    A second more than ``when``, for the API's whole-second timestamps.
    """
    later = when + dt.timedelta(seconds=1)
    eventually(lambda: dt.datetime.now(dt.UTC) > later, 120, interval=0.1, what=what or f"the clock past {when}")

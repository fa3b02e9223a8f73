"""Shared test helpers: polling for eventual state (never for timing), paths."""

import os
import pathlib
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
T = TypeVar("T")


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


def missing_tool(message: str) -> NoReturn:
    """A tool the test needs is missing: fail under CI (``$CI`` set), where a skip would prove nothing; else skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: a missing tool fails the test)")
    pytest.skip(message)

"""Timestamps read from raw bodies on hot paths: the API server's form, and None for anything else."""

import datetime as dt

import pytest

from oncall_operator.domain import timestamps


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-02T02:41:12Z", dt.datetime(2026, 12, 2, 2, 41, 12, tzinfo=dt.UTC)),
        ("2026-12-02T03:41:12+01:00", dt.datetime(2026, 12, 2, 2, 41, 12, tzinfo=dt.UTC)),
        ("", None),
        (None, None),
        ("not a time", None),
        (17, None),
    ],
)
def test_a_timestamp_is_read_or_is_none(value: object, expected: dt.datetime | None) -> None:
    assert timestamps.parse(value) == expected

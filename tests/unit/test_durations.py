"""Duration strings: the API's ``5m``/``1h30m``/``7d`` format, parsed and written back."""

import datetime as dt

import pytest

from oncall_operator.api import durations

TD = dt.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", TD()),
        ("30s", TD(seconds=30)),
        ("5m", TD(minutes=5)),
        ("1h30m", TD(hours=1, minutes=30)),
        ("7d", TD(days=7)),
        ("1w", TD(weeks=1)),
        ("2w3d4h5m6s", TD(weeks=2, days=3, hours=4, minutes=5, seconds=6)),
        ("90m", TD(minutes=90)),
    ],
)
def test_parse(text: str, expected: dt.timedelta) -> None:
    assert durations.parse(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "-5m", "1.5h", "5M", "1y", "5mm", "PT5M"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(durations.DurationError, match="not a duration"):
        durations.parse(text)


@pytest.mark.parametrize("seconds", [0, 1, 59, 60, 3600, 5400, 86400, 604800, 694861])
def test_render_round_trips(seconds: int) -> None:
    delta = TD(seconds=seconds)
    assert durations.parse(durations.render(delta)) == delta

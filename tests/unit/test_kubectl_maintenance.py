"""``kubectl oncall maintenance start``: the window it creates, and one-line errors for bad input."""

import argparse
import datetime as dt
from typing import Any

import pytest

from oncall_operator.kubectl_plugin import maintenance
from oncall_operator.kubectl_plugin.errors import PluginError

NOW = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


def args(**given: Any) -> argparse.Namespace:
    fields = {
        "name": None,
        "namespace": "shop",
        "duration": None,
        "until": None,
        "mutes": "All",
        "reason": None,
        "namespaces": None,
        "selector": None,
        "alert": None,
    }
    return argparse.Namespace(**{**fields, **given})


def test_start_makes_a_one_off_window_from_now() -> None:
    body = maintenance.window_body(
        args(duration="2h", reason="migration", selector="app=db, tier=data", alert="DBDown", mutes="Pages"), NOW
    )
    assert body["metadata"] == {"name": "maintenance-20260301-100000", "namespace": "shop"}
    assert body["spec"] == {
        "reason": "migration",
        "start": "2026-03-01T10:00:00Z",
        "end": "2026-03-01T12:00:00Z",
        "scope": {
            "namespaces": [],
            "workloadSelector": {"app": "db", "tier": "data"},
            "matchers": [{"label": "alertname", "op": "=", "value": "DBDown"}],
        },
        "mutes": "Pages",
    }


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"duration": "2x"}, "--for '2x'"),
        ({"until": "2026-03-01T09:00:00Z"}, "not after now"),
        ({"until": "2026-03-01T12:00:00"}, "no time zone"),
        ({"duration": "1h", "selector": "app"}, "--selector 'app' is not key=value"),
        ({"duration": "1h", "namespaces": "Kube_System"}, "scope.namespaces.0"),
        ({"duration": "1h", "name": "x", "reason": "r" * 2000}, "reason"),
    ],
)
def test_bad_input_is_one_line(given: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError, match=message.replace("(", r"\(")):
        maintenance.window_body(args(**given), NOW)

"""The intake's bounds: big groups kept (truncated, recorded), dedup past 100 alerts, new Incidents rate-limited."""

import datetime as dt
from typing import Any

import pytest

from oncall_operator.api import incident
from oncall_operator.domain import alert_incident, alerts, ratelimit

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


def raw(n: int, status: str = "firing", truncated: int = 0) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="NodeDown"}',
        "truncatedAlerts": truncated,
        "status": status,
        "groupLabels": {"alertname": "NodeDown"},
        "alerts": [
            {"status": status, "labels": {"alertname": "NodeDown", "node": f"n{i}"}, "fingerprint": f"{i:016x}"}
            for i in range(n)
        ],
    }


def test_a_group_over_the_alert_limit_is_kept_with_the_rest_counted() -> None:
    payload = alerts.parse(raw(1500, truncated=7))
    assert len(payload.alerts) == alerts.MAX_ALERTS
    assert payload.truncated_alerts == 500 + 7


def test_the_truncation_is_recorded_on_the_incident() -> None:
    payload = alerts.parse(raw(1200))
    spec = incident.IncidentSpec(title="NodeDown", severity="critical")
    status = alert_incident.record(spec, None, payload, T0)
    assert status is not None and status.truncated_alerts == 200
    assert any(e.type == "AlertsTruncated" and "200 alerts" in e.message for e in status.timeline)


def test_a_150_alert_group_delivered_again_counts_nothing_new() -> None:
    spec = incident.IncidentSpec(title="NodeDown", severity="critical")
    status = alert_incident.record(spec, None, alerts.parse(raw(150)), T0)
    assert status is not None and status.occurrences == 150 and len(status.detections) == 100
    again = alert_incident.record(spec, status, alerts.parse(raw(150)), T0 + dt.timedelta(minutes=5))
    assert again is not None  # lastSeen moves on ...
    assert again.occurrences == 150  # ... but the 50 alerts beyond the 100 detections are not new
    assert not [e for e in again.timeline[len(status.timeline) :] if e.type == "AlertFiring"]
    more = alert_incident.record(spec, again, alerts.parse(raw(151)), T0 + dt.timedelta(minutes=6))
    assert more is not None and more.occurrences == 151


def test_the_fingerprints_are_bounded_oldest_first() -> None:
    spec = incident.IncidentSpec(title="NodeDown", severity="critical")
    status: incident.IncidentStatus | None = None
    for k in range(6):
        body = raw(1000)
        for a in body["alerts"]:
            a["fingerprint"] = f"{k:04x}{int(a['fingerprint'], 16):012x}"
        status = alert_incident.record(spec, status, alerts.parse(body), T0 + dt.timedelta(minutes=k))
    assert status is not None
    assert len(status.alert_fingerprints) == alert_incident.FINGERPRINTS_MAX
    incident.IncidentStatus.model_validate(status.wire())


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0.0] * 3, [0.0, 0.0, 30.0]),  # burst 2, then one token per 30 s
        ([0.0, 0.0, 15.0], [0.0, 0.0, 15.0]),
        ([0.0, 0.0, 30.0], [0.0, 0.0, 0.0]),
        ([0.0, 0.0, 29.0, 60.0], [0.0, 0.0, 1.0, 0.0]),
    ],
)
def test_new_incidents_per_namespace_are_a_token_bucket(times: list[float], expected: list[float]) -> None:
    buckets = ratelimit.Buckets(per_minute=2, burst=2)
    assert [pytest.approx(buckets.take("ns", t)) for t in times] == expected
    assert buckets.take("other", times[-1]) == 0.0  # one namespace's storm leaves the others alone

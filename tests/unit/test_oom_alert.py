"""Which alerts join an OOM kill's Incident, which pods they name (hostile labels too), and what joining writes."""

import datetime as dt
from typing import Any

import pytest

from oncall_operator.api import incident, runbook
from oncall_operator.domain import alerts, lifecycle, oom_alert

NOW = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


def spec(alert_name: str | None = "PodOOMKilled", event: str | None = "OOMKilled") -> runbook.RunbookSpec:
    trigger = {k: v for k, v in (("alertName", alert_name), ("event", event)) if v}
    return runbook.RunbookSpec.model_validate({"trigger": trigger})


BOTH = [("oncall-system", "pod-oom-killed", spec())]


def payload(status: str = "firing", *pods: tuple[str, str], name: str = "PodOOMKilled") -> alerts.Payload:
    found: list[dict[str, Any]] = [
        {
            "status": status,
            "labels": {"alertname": name, "namespace": ns, "pod": pod, "container": "app"},
            "annotations": {},
            "startsAt": "2026-03-10T08:59:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-10T09:30:00Z",
            "generatorURL": "",
            "fingerprint": f"fp-{ns}-{pod}"[:64],
        }
        for ns, pod in pods or [("shop", "web-5f-abc")]
    ]
    return alerts.parse(
        {
            "version": "4",
            "groupKey": "{}:{alertname=" + name + "}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "oncall",
            "groupLabels": {"alertname": name},
            "commonLabels": {"alertname": name},
            "commonAnnotations": {},
            "externalURL": "",
            "alerts": found,
        }
    )


@pytest.mark.parametrize(
    ("runbooks", "expected"),
    [
        (BOTH, True),
        ([("ns", "a", spec(event=None))], False),  # the alert alone: an alert Incident, as before
        ([("ns", "e", spec(alert_name=None))], False),
        ([("ns", "a", spec(event=None)), ("ns", "e", spec(alert_name=None))], False),  # two runbooks say nothing
        ([("ns", "broken", None)], False),
        ([], False),
    ],
)
def test_an_oom_alert_is_one_a_runbook_ties_to_the_kill(runbooks: Any, expected: bool) -> None:
    assert oom_alert.is_oom_alert("PodOOMKilled", runbooks) is expected


@pytest.mark.parametrize(
    ("pods", "scope", "expected"),
    [
        ([("shop", "web-5f-abc")], (), [("shop", "web-5f-abc")]),
        ([("shop", "web-0"), ("shop", "web-0"), ("shop", "web-1")], (), [("shop", "web-0"), ("shop", "web-1")]),
        ([("shop", "web-0")], ("other",), []),  # a namespace the operator does not watch
        ([("shop", "web-0"), ("kube-system", "etcd-0")], ("shop",), [("shop", "web-0")]),
        # hostile labels never reach a URL
        ([("shop", "../../secrets/x")], (), []),
        ([("shop", "web/../../x")], (), []),
        ([("../..", "web-0")], (), []),
        ([("Shop", "web-0")], (), []),
        ([("shop", "web-0?watch=true")], (), []),
        ([("shop", "x" * 254)], (), []),
        ([("s" * 64, "web-0")], (), []),
        ([("shop", "")], (), []),
    ],
)
def test_pods_named_by_an_oom_alert(pods: list[tuple[str, str]], scope: tuple[str, ...], expected: list[Any]) -> None:
    found = oom_alert.pods(payload("firing", *pods), BOTH, scope)
    assert [(r.namespace, r.name) for r in found] == expected


def test_at_most_ten_pods_are_read() -> None:
    many = [("shop", f"web-{i}") for i in range(30)]
    assert len(oom_alert.pods(payload("firing", *many), BOTH, ())) == oom_alert.PODS_MAX


def test_not_an_oom_alert_names_no_pods() -> None:
    assert oom_alert.pods(payload(name="Other"), BOTH, ()) == ()


def kill_incident() -> incident.IncidentStatus:
    spec_ = incident.IncidentSpec(title="web OOMKilled", severity="warning")
    st = lifecycle.opened(spec_, NOW)
    st.phase, st.guardrails.raises = incident.Phase.MITIGATED, 1
    return st


def test_joining_notes_the_alert_and_changes_nothing_else() -> None:
    before = kill_incident()
    joined = oom_alert.join(before, payload(), NOW)
    assert joined is not None
    assert (joined.phase, joined.guardrails, joined.escalation) == (before.phase, before.guardrails, before.escalation)
    assert joined.timeline[-1].type == "AlertFiring" and "web-5f-abc" in joined.timeline[-1].message
    assert joined.detections[-1].key == "fp-shop-web-5f-abc@2026-03-10T08:59:00Z"
    assert oom_alert.join(joined, payload(), NOW) is None  # Alertmanager's repeat, an HA pair's duplicate


def test_the_alerts_resolution_is_noted_once_and_does_not_resolve() -> None:
    joined = oom_alert.join(kill_incident(), payload(), NOW)
    resolved = oom_alert.join(joined, payload("resolved"), NOW)
    assert resolved is not None and resolved.phase == incident.Phase.MITIGATED
    assert resolved.timeline[-1].type == "AlertResolved"
    assert oom_alert.join(resolved, payload("resolved"), NOW) is None


def test_nothing_to_join_before_the_kill_opened_it() -> None:
    assert oom_alert.join(None, payload(), NOW) is None

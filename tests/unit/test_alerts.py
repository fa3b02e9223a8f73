"""Alertmanager payloads: validation reasons, group identity, severity, namespace, runbook, phases."""

import copy
import datetime as dt
import pathlib
import re
from typing import Any

import pytest
import yaml

from oncall_operator.api import base, incident, policy, runbook
from oncall_operator.domain import alert_incident, alerts, escalation, lifecycle

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
Phase = incident.Phase
EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
POLICY = policy.EscalationPolicySpec.model_validate(
    yaml.safe_load((EXAMPLES / "escalation-policy.yaml").read_text())["spec"]
)
GROUP_KEY = '{}/{team="backend"}:{alertname="APIErrorRateSLOCritical"}'


def alert(
    status: str = "firing", fp: str = "f1", starts: str = "2026-03-10T08:59:00Z", **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "APIErrorRateSLOCritical", **labels},
        "annotations": {"summary": f"errors on {labels.get('pod', 'api')}"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-10T09:30:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fp,
    }


def raw(status: str = "firing", alerts_: list[dict[str, Any]] | None = None, **common: str) -> dict[str, Any]:
    labels = {"alertname": "APIErrorRateSLOCritical", **common}
    return {
        "version": "4",
        "groupKey": GROUP_KEY,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "oncall",
        "groupLabels": {"alertname": "APIErrorRateSLOCritical"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "API error rate above SLO", "description": "5xx > 1% for 5m"},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts_ if alerts_ is not None else [alert(status, **common)],
    }


def parsed(status: str = "firing", alerts_: list[dict[str, Any]] | None = None, **common: str) -> alerts.Payload:
    return alerts.parse(raw(status, alerts_, **common))


# --- validation: every refusal names the field ----------------------------------------------


def broken(path: str, value: Any) -> dict[str, Any]:
    body = raw()
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is KeyError:
        del node[key]
    else:
        node[key] = value
    return body


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ([], "body", "must be a JSON object, not a list"),
        (broken("version", "3"), "version", 'must be "4"'),
        (broken("version", 4), "version", "must be a string, not a number"),
        (broken("groupKey", KeyError), "groupKey", "is required"),
        (broken("groupKey", ""), "groupKey", "must not be empty"),
        (broken("status", "pending"), "status", 'must be "firing" or "resolved"'),
        (broken("truncatedAlerts", -1), "truncatedAlerts", "non-negative integer"),
        (broken("truncatedAlerts", True), "truncatedAlerts", "non-negative integer"),
        (broken("commonLabels", {"a": 1}), "commonLabels", "must be an object of strings"),
        (broken("groupLabels", ["x"]), "groupLabels", "must be an object of strings"),
        (broken("externalURL", 5), "externalURL", "must be a string"),
        (broken("alerts", KeyError), "alerts", "is required and must be a list"),
        (broken("alerts", {}), "alerts", "must be a list"),
        (broken("alerts", []), "alerts", "at least one alert"),
        (broken("alerts.0", "x"), "alerts[0]", "must be an object, not a string"),
        (broken("alerts.0.labels", {"pod": None}), "alerts[0].labels", "must be an object of strings"),
        (broken("alerts.0.labels", KeyError), "alerts[0].labels", "is required"),
        (broken("alerts.0.labels", {}), "alerts[0].labels", "at least one label"),
        (broken("alerts.0.annotations", "x"), "alerts[0].annotations", "must be an object of strings"),
        (broken("alerts.0.status", "ok"), "alerts[0].status", 'must be "firing" or "resolved"'),
        (broken("alerts.0.startsAt", "yesterday"), "alerts[0].startsAt", "RFC 3339"),
        (broken("alerts.0.startsAt", "2026-02-30T00:00:00Z"), "alerts[0].startsAt", "not a valid time"),
        (broken("alerts.0.endsAt", "2026-03-10"), "alerts[0].endsAt", "RFC 3339"),
        (broken("alerts.0.fingerprint", 7), "alerts[0].fingerprint", "must be a string"),
        (broken("alerts.0.status", "resolved"), "status", "every alert is resolved"),
    ],
)
def test_a_bad_payload_is_refused_with_the_field_and_the_reason(body: Any, field: str, reason: str) -> None:
    with pytest.raises(alerts.Invalid) as caught:
        alerts.parse(body)
    assert caught.value.field == field and reason in caught.value.reason
    assert str(caught.value).startswith(f"{field}: ")


def test_the_third_alert_is_named_by_its_index() -> None:
    body = raw(alerts_=[alert(fp="a"), alert(fp="b"), {**alert(fp="c"), "labels": {"x": ["y"]}}])
    with pytest.raises(alerts.Invalid, match=re.escape("alerts[2].labels: must be an object of strings")):
        alerts.parse(body)


def test_a_firing_alert_in_a_resolved_group_is_refused() -> None:
    with pytest.raises(alerts.Invalid, match=re.escape('alerts[0].status: "firing" in a group whose status')):
        alerts.parse(raw("resolved", [alert("firing")]))


def test_what_alertmanager_sends_is_accepted_and_typed() -> None:
    body = raw(alerts_=[alert(starts="2026-03-10T08:59:00.123456789+01:00")])
    body["futureField"] = {"anything": True}  # a newer Alertmanager's addition
    p = alerts.parse(body)
    [a] = p.alerts
    assert a.starts_at == dt.datetime(2026, 3, 10, 7, 59, 0, 123456, tzinfo=dt.UTC)
    assert a.ends_at is None  # Go's zero time
    assert a.firing and a.key == "f1@2026-03-10T07:59:00Z"
    assert p.firing and p.alertname == "APIErrorRateSLOCritical" and p.receiver == "oncall"


def test_status_not_endsAt_decides() -> None:
    firing_with_end = {**alert(), "endsAt": "2026-03-10T08:00:00Z"}  # an endsAt in the past, still firing
    assert alerts.parse(raw(alerts_=[firing_with_end])).alerts[0].firing


def test_a_missing_fingerprint_is_computed_from_the_labels() -> None:
    a, b = alert(pod="p1"), alert(pod="p1")
    del a["fingerprint"], b["fingerprint"]
    assert alerts.parse(raw(alerts_=[a])).alerts[0].fingerprint == alerts.parse(raw(alerts_=[b])).alerts[0].fingerprint


# --- identity: one Incident per group ----------------------------------------------------------


@pytest.mark.parametrize(
    ("group_key", "alertname", "expected"),
    [
        (GROUP_KEY, "APIErrorRateSLOCritical", r"^am-apierrorrateslocritical-[0-9a-f]{12}$"),
        ("{}:{}", "", r"^am-[0-9a-f]{12}$"),
        ("{}:{x}", "Weird_Name.With:Chars", r"^am-weird-name-with-chars-[0-9a-f]{12}$"),
        ("{}:{y}", "A" * 300, r"^am-a{47}-[0-9a-f]{12}$"),
        ("{}:{z}", "---", r"^am-[0-9a-f]{12}$"),
    ],
)
def test_incident_names_are_dns_labels(group_key: str, alertname: str, expected: str) -> None:
    body = raw()
    body["groupKey"], body["groupLabels"], body["commonLabels"] = group_key, {"alertname": alertname}, {}
    name = alerts.incident_name(alerts.parse(body))
    assert re.match(expected, name) and len(name) <= 63
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name)


def test_the_group_key_alone_decides_the_name() -> None:
    one = raw()
    two = copy.deepcopy(one)
    two["receiver"], two["alerts"] = "other-replica", [alert(fp="f2", pod="p2")]  # another member of the HA pair
    assert alerts.incident_name(alerts.parse(one)) == alerts.incident_name(alerts.parse(two))
    two["groupKey"] += "x"
    assert alerts.incident_name(alerts.parse(one)) != alerts.incident_name(alerts.parse(two))


# --- severity, team, target -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "fallback", "expected", "note"),
    [
        ("critical", None, "critical", ""),
        ("warning", None, "warning", ""),
        ("info", None, "info", ""),
        ("error", None, "critical", "'error' is taken as critical"),
        ("page", None, "critical", "'page' is taken as critical"),
        ("Critical", None, "critical", "'Critical' is taken as critical"),
        ("high", None, "warning", "'high' is not one of critical, warning, info: the default severity warning"),
        (None, None, "warning", "no severity label: the default severity warning"),
        (None, base.Severity.CRITICAL, "critical", "no severity label: the runbook's severity critical"),
        ("bogus", base.Severity.INFO, "info", "the runbook's severity info"),
    ],
)
def test_severity_from_the_label(label: str | None, fallback: base.Severity | None, expected: str, note: str) -> None:
    labels = {"severity": label} if label is not None else {}
    got, said = alert_incident.severity(labels, fallback)
    assert got.value == expected
    assert (note in said) if note else said == ""


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"namespace": "shop", "deployment": "api", "pod": "api-1"}, ("Deployment", "shop", "api", "")),
        ({"namespace": "db", "statefulset": "pg", "container": "postgres"}, ("StatefulSet", "db", "pg", "postgres")),
        ({"namespace": "n", "daemonset": "agent"}, ("DaemonSet", "n", "agent", "")),
        ({"namespace": "n", "job_name": "backup-1"}, ("Job", "n", "backup-1", "")),
        ({"namespace": "n", "cronjob": "nightly", "job_name": "nightly-1"}, ("CronJob", "n", "nightly", "")),
        ({"namespace": "n", "pod": "solo"}, ("Pod", "n", "solo", "")),
        ({"namespace": "n", "workload": "w", "workload_type": "deployment"}, ("Deployment", "n", "w", "")),
        ({"namespace": "n"}, ("", "n", "", "")),
        ({}, ("", "", "", "")),
    ],
)
def test_target_workload_from_the_labels(labels: dict[str, str], expected: tuple[str, str, str, str]) -> None:
    t = alert_incident.target(labels)
    assert (t.kind, t.namespace, t.name, t.container) == expected


# --- namespace ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "scope", "expected"),
    [
        ("shop", (), "shop"),
        ("shop", ("shop", "db"), "shop"),
        ("shop", ("team-*",), "oncall-system"),
        ("team-a", ("team-*",), "team-a"),
        ("team-a", ("team-*", "!team-a"), "oncall-system"),
        (None, (), "oncall-system"),
        ("", (), "oncall-system"),
        ("Not_A_Namespace", (), "oncall-system"),
        ("x" * 64, (), "oncall-system"),
    ],
)
def test_namespace_is_the_alerts_when_watched(namespace: str | None, scope: tuple[str, ...], expected: str) -> None:
    labels = {"namespace": namespace} if namespace is not None else {}
    assert alert_incident.home(labels, "oncall-system", scope) == expected


def test_an_incident_is_looked_for_where_the_group_may_have_opened_it() -> None:
    two = parsed(alerts_=[alert(fp="a", namespace="shop"), alert(fp="b", namespace="db")])
    assert alert_incident.homes(two, "oncall-system", ()) == ("oncall-system", "shop", "db")
    one = parsed(namespace="shop")
    assert alert_incident.homes(one, "oncall-system", ()) == ("shop", "oncall-system")


# --- runbook -----------------------------------------------------------------------------------


def book(
    alertname: str = "APIErrorRateSLOCritical", *matchers: tuple[str, str, str], **more: Any
) -> runbook.RunbookSpec:
    return runbook.RunbookSpec.model_validate(
        {
            "trigger": {
                "alertName": alertname,
                "matchers": [{"label": k, "op": o, "value": v} for k, o, v in matchers],
            },
            "severity": "critical",
            "escalationPolicyRef": {"name": "valeo-escalation"},
            "steps": [{"title": "Check logs"}, {"title": "Roll back"}],
            **more,
        }
    )


CANDIDATES = [
    ("oncall-system", "default-api", book()),
    ("oncall-system", "prod-api", book("APIErrorRateSLOCritical", ("env", "=", "prod"))),
    ("shop", "shop-api", book("APIErrorRateSLOCritical", ("team", "=~", "back.*"))),
    ("shop", "other-alert", book("PodOOMKilled")),
    ("shop", "broken", None),
    ("elsewhere", "stranger", book()),
]


@pytest.mark.parametrize(
    ("alertname", "labels", "namespaces", "expected"),
    [
        ("APIErrorRateSLOCritical", {"team": "backend"}, ["shop", "oncall-system"], "shop/shop-api"),
        ("APIErrorRateSLOCritical", {"team": "frontend"}, ["shop", "oncall-system"], "oncall-system/default-api"),
        ("APIErrorRateSLOCritical", {"env": "prod"}, ["oncall-system"], "oncall-system/prod-api"),
        ("APIErrorRateSLOCritical", {"env": "dev"}, ["oncall-system"], "oncall-system/default-api"),
        ("PodOOMKilled", {}, ["shop", "oncall-system"], "shop/other-alert"),
        ("PodOOMKilled", {}, ["oncall-system"], None),
        ("Unknown", {}, ["shop", "oncall-system"], None),
        ("", {}, ["shop", "oncall-system"], None),
    ],
)
def test_runbook_by_alertname_and_matchers_own_namespace_first(
    alertname: str, labels: dict[str, str], namespaces: list[str], expected: str | None
) -> None:
    chosen = alert_incident.select_runbook(CANDIDATES, alertname, labels, namespaces)
    assert (f"{chosen.namespace}/{chosen.name}" if chosen else None) == expected


def test_the_opening_attaches_the_runbook_and_its_policy_across_namespaces() -> None:
    o = alert_incident.opening(parsed(namespace="shop", deployment="api"), CANDIDATES[:2], "oncall-system", ())
    assert (o.namespace, o.spec.severity.value, o.spec.title) == ("shop", "critical", "API error rate above SLO")
    assert o.spec.runbook_ref == base.ObjectRef(name="default-api", namespace="oncall-system")
    assert o.spec.escalation_policy_ref == base.ObjectRef(name="valeo-escalation", namespace="oncall-system")
    assert (o.spec.target.kind, o.spec.target.namespace, o.spec.target.name) == ("Deployment", "shop", "api")
    assert o.spec.source.type == incident.SourceType.ALERTMANAGER and o.spec.source.group_key == GROUP_KEY
    # what a page quotes: the alert's words and links, kept apart on the Incident
    assert o.spec.source.annotations == {"summary": "API error rate above SLO", "description": "5xx > 1% for 5m"}
    assert (o.spec.source.generator_url, o.spec.source.external_url) == (
        "http://prometheus/graph",
        "http://alertmanager:9093",
    )
    assert o.checklist == ("Check logs", "Roll back")
    assert o.labels["oncall.dev/alertname"] == "APIErrorRateSLOCritical"
    assert "no severity label: the runbook's severity critical applies" in o.notes


def test_an_opening_without_runbook_says_so_and_team_becomes_a_label() -> None:
    o = alert_incident.opening(parsed(severity="page", team="Data Platform!"), [], "oncall-system", ())
    assert o.spec.runbook_ref is None and o.spec.escalation_policy_ref is None and o.checklist == ()
    assert o.spec.severity == base.Severity.CRITICAL and o.labels["oncall.dev/team"] == "Data-Platform"
    assert any("no Runbook triggers" in n for n in o.notes)


# --- phases: one Incident, occurrences, resolve, reopen ------------------------------------------


def opened(payload: alerts.Payload | None = None) -> tuple[incident.IncidentSpec, incident.IncidentStatus]:
    o = alert_incident.opening(payload or parsed(severity="critical"), CANDIDATES[:1], "oncall-system", ())
    st = alert_incident.record(o.spec, None, payload or parsed(severity="critical"), T0, o.notes, o.checklist)
    assert st is not None
    return o.spec, st


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_the_first_delivery_opens_triggered_with_checklist_and_detections() -> None:
    _, st = opened()
    assert (st.phase, st.occurrences, st.first_seen, st.last_seen) == (Phase.TRIGGERED, 1, T0, T0)
    assert [c.title for c in st.checklist] == ["Check logs", "Roll back"]
    assert [d.key for d in st.detections] == ["f1@2026-03-10T08:59:00Z"]
    assert [e.type for e in st.timeline] == ["Triggered", "AlertFiring"]


def test_a_duplicate_delivery_writes_nothing_and_a_repeat_only_moves_last_seen() -> None:
    spec, st = opened()
    again = parsed(severity="critical")
    assert alert_incident.record(spec, st, again, T0) is None  # the HA twin, the same second
    later = alert_incident.record(spec, st, again, at(5))
    assert later is not None and (later.occurrences, later.last_seen, later.timeline) == (1, at(5), st.timeline)


def test_a_new_alert_in_the_group_is_a_new_occurrence_without_a_new_page() -> None:
    spec, st = opened()
    more = parsed(alerts_=[alert(fp="f1"), alert(fp="f2", pod="api-2")])
    new = alert_incident.record(spec, st, more, at(1))
    assert new is not None and (new.phase, new.occurrences, new.escalation) == (Phase.TRIGGERED, 2, st.escalation)
    assert new.timeline[-1].type == "AlertFiring" and "api-2" in new.timeline[-1].message


def test_the_handlers_opening_is_not_counted_twice() -> None:
    spec, _ = opened()
    st = alert_incident.record(spec, lifecycle.opened(spec, T0), parsed(), T0, ["a note"], ["Step"])
    assert st is not None and st.occurrences == 1 and [c.title for c in st.checklist] == ["Step"]
    assert [e.type for e in st.timeline] == ["Triggered", "AlertIntake", "AlertFiring"]


def test_a_resolved_group_resolves_once() -> None:
    spec, st = opened()
    done = alert_incident.record(spec, st, parsed("resolved"), at(20))
    assert done is not None and (done.phase, done.resolved_by, done.resolved_at) == (
        Phase.RESOLVED,
        "alertmanager",
        at(20),
    )
    assert done.timeline[-1].type == "Resolved"
    assert alert_incident.record(spec, done, parsed("resolved"), at(21)) is None
    assert alert_incident.record(spec, done, parsed(severity="critical"), at(22)) is None  # the HA twin's late firing


def test_firing_again_reopens_and_pages_again() -> None:
    spec, st = opened()
    inc = incident.Incident(spec=spec, status=st)
    first = escalation.decide(POLICY, inc, T0, lambda t, now: [escalation.Recipient(name="Ada")])
    assert [s.key.split("@")[0] for s in first.sends] == ["page/L1/loop0"]
    st = first.status
    st.acknowledged_at, st.acknowledged_by, st.phase = at(3), "ada", Phase.ACKNOWLEDGED
    done = alert_incident.record(spec, st, parsed("resolved"), at(20))
    assert done is not None
    done.escalation.closed = True
    back = alert_incident.record(spec, done, parsed(alerts_=[alert(starts="2026-03-10T09:40:00Z")]), at(41))
    assert back is not None and back.phase == Phase.REOPENED and back.occurrences == 2
    assert (back.resolved_at, back.resolved_by, back.acknowledged_at) == (None, "", None)
    esc = back.escalation
    assert (esc.started_at, esc.level, esc.closed, esc.next_step_at) == (at(41), 0, False, None)
    assert [e.type for e in back.timeline[-2:]] == ["Reopened", "AlertFiring"]
    again = escalation.decide(POLICY, incident.Incident(spec=spec, status=back), at(41), lambda t, now: [])
    assert [s.key for s in again.sends] == [f"page/L1/loop0@{int(at(41).timestamp())}"]


def test_a_stale_resolution_from_before_the_reopening_is_ignored() -> None:
    spec, st = opened()
    done = alert_incident.record(spec, st, parsed("resolved"), at(20))
    assert done is not None
    back = alert_incident.record(spec, done, parsed(alerts_=[alert(fp="f9")]), at(30))
    assert back is not None and back.phase == Phase.REOPENED
    assert alert_incident.record(spec, back, parsed("resolved"), at(31)) is None  # the twin's copy of the old one
    now_done = alert_incident.record(spec, back, parsed("resolved", [alert("resolved", fp="f9")]), at(32))
    assert now_done is not None and now_done.phase == Phase.RESOLVED


def test_truncated_alerts_are_noted() -> None:
    body = raw()
    body["truncatedAlerts"] = 7
    o = alert_incident.opening(alerts.parse(body), [], "oncall-system", ())
    assert any("left out 7 alerts" in n for n in o.notes)


def test_huge_labels_are_bounded_so_the_api_server_takes_the_incident() -> None:
    o = alert_incident.opening(parsed(big="x" * 100_000), [], "oncall-system", ())
    assert len(o.spec.source.labels["big"]) == 1024


@pytest.mark.parametrize(
    ("covered", "present", "read"),
    [
        ((), (), ("team-a", "oncall-system")),  # no index to trust: every home is read, in order
        (("team-a", "oncall-system"), (), ()),  # both covered, neither holds it: a new group, nothing read
        (("team-a", "oncall-system"), ("oncall-system",), ("oncall-system",)),  # read only where it is
        (("team-a",), (), ("oncall-system",)),  # the operator's namespace outside the watch: read it
        (("team-a", "oncall-system"), ("team-a", "oncall-system"), ("team-a", "oncall-system")),
    ],
)
def test_only_the_homes_the_index_cannot_rule_out_are_read(
    covered: tuple[str, ...], present: tuple[str, ...], read: tuple[str, ...]
) -> None:
    assert alert_incident.lookups(("team-a", "oncall-system"), covered, present) == read

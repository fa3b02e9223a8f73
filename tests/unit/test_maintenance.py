"""Maintenance windows as tables: when a window is open (one-off, recurring, across DST), and what it covers."""

import datetime as dt
from typing import Any

import pytest

from oncall_operator.api import base, incident, maintenance, runbook
from oncall_operator.domain import delivery, escalation, guardrails
from oncall_operator.domain import maintenance as mw
from tests.unit.test_page_budget import POLICY, resolve

UTC = dt.UTC
OPERATOR = "oncall-system"


def spec(**fields: Any) -> maintenance.MaintenanceWindowSpec:
    return maintenance.MaintenanceWindowSpec.model_validate(fields)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


SATURDAY_NIGHT = spec(
    recurring={"timeZone": "Europe/Berlin", "weekdays": ["Sat"], "times": [{"start": "02:00", "end": "04:00"}]}
)
WEEKEND = spec(recurring={"timeZone": "Europe/Berlin", "weekdays": ["Sat", "Sun"]})
LAST_DAY = spec(recurring={"timeZone": "UTC", "daysOfMonth": [-1], "times": [{"start": "22:00", "end": "24:00"}]})
FEB_29 = spec(recurring={"timeZone": "UTC", "daysOfMonth": [29], "months": [2]})


@pytest.mark.parametrize(
    ("window", "now", "active", "start", "end"),
    [
        # one-off
        (
            spec(start="2026-03-01T10:00:00Z", end="2026-03-01T12:00:00Z"),
            "2026-03-01T09:00:00+00:00",
            False,
            "2026-03-01T10:00:00+00:00",
            "2026-03-01T12:00:00+00:00",
        ),
        (
            spec(start="2026-03-01T10:00:00Z", end="2026-03-01T12:00:00Z"),
            "2026-03-01T10:00:00+00:00",
            True,
            "2026-03-01T10:00:00+00:00",
            "2026-03-01T12:00:00+00:00",
        ),
        (
            spec(start="2026-03-01T10:00:00Z", end="2026-03-01T12:00:00Z"),
            "2026-03-01T12:00:00+00:00",
            False,
            None,
            None,
        ),
        # Saturdays 02:00-04:00 Berlin: winter (+01:00), the DST night (clocks 02:00 -> 03:00 on 2026-03-29,
        # a Sunday, so the Saturday before is still winter), summer (+02:00), and back (2026-10-25, Sunday)
        (SATURDAY_NIGHT, "2026-03-20T12:00:00+01:00", False, "2026-03-21T02:00:00+01:00", "2026-03-21T04:00:00+01:00"),
        (SATURDAY_NIGHT, "2026-03-22T12:00:00+01:00", False, "2026-03-28T02:00:00+01:00", "2026-03-28T04:00:00+01:00"),
        (SATURDAY_NIGHT, "2026-03-29T12:00:00+02:00", False, "2026-04-04T02:00:00+02:00", "2026-04-04T04:00:00+02:00"),
        (SATURDAY_NIGHT, "2026-04-04T03:59:00+02:00", True, "2026-04-04T02:00:00+02:00", "2026-04-04T04:00:00+02:00"),
        (SATURDAY_NIGHT, "2026-10-24T03:00:00+02:00", True, "2026-10-24T02:00:00+02:00", "2026-10-24T04:00:00+02:00"),
        (SATURDAY_NIGHT, "2026-10-25T12:00:00+01:00", False, "2026-10-31T02:00:00+01:00", "2026-10-31T04:00:00+01:00"),
        # the weekend, whole days: Saturday and Sunday touch, so one opening; the spring weekend is an hour shorter
        (WEEKEND, "2026-03-27T12:00:00+01:00", False, "2026-03-28T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
        (WEEKEND, "2026-03-29T02:30:00+01:00", True, "2026-03-28T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
        (WEEKEND, "2026-10-25T02:30:00+01:00", True, "2026-10-24T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
        # the last day of the month, 22:00 to midnight; and a window that opens only in leap years
        (LAST_DAY, "2026-02-10T00:00:00+00:00", False, "2026-02-28T22:00:00+00:00", "2026-03-01T00:00:00+00:00"),
        (LAST_DAY, "2026-04-30T23:00:00+00:00", True, "2026-04-30T22:00:00+00:00", "2026-05-01T00:00:00+00:00"),
        (FEB_29, "2025-03-01T00:00:00+00:00", False, None, None),  # beyond the 400-day horizon
        (FEB_29, "2027-06-01T00:00:00+00:00", False, "2028-02-29T00:00:00+00:00", "2028-03-01T00:00:00+00:00"),
    ],
)
def test_openings(window: Any, now: str, active: bool, start: str | None, end: str | None) -> None:
    is_active, opening = mw.status(window, at(now))
    assert is_active == active
    assert (opening.start if opening else None) == (at(start) if start else None)
    assert (opening.end if opening else None) == (at(end) if end else None)


def test_a_window_at_a_time_the_spring_change_skips_opens_when_the_clock_passes_it() -> None:
    # Sunday 2026-03-29 02:30 does not exist in Berlin: the window opens at 03:00 CEST, closes at 04:00 CEST
    w = spec(
        recurring={"timeZone": "Europe/Berlin", "weekdays": ["Sun"], "times": [{"start": "02:30", "end": "04:00"}]}
    )
    opening = mw.current_or_next(w, at("2026-03-28T12:00:00+01:00"))
    assert opening == mw.Opening(at("2026-03-29T03:00:00+02:00"), at("2026-03-29T04:00:00+02:00"))


def window(namespace: str, **fields: Any) -> mw.Window:
    fields.setdefault("start", "2026-03-01T10:00:00Z")
    fields.setdefault("end", "2026-03-01T12:00:00Z")
    return mw.Window(namespace, "db-migration", spec(**fields))


NOW = at("2026-03-01T11:00:00+00:00")


@pytest.mark.parametrize(
    ("w", "what", "namespace", "labels", "workload_labels", "muted"),
    [
        (window("shop"), mw.Mutes.PAGES, "shop", {}, None, True),
        (window("shop"), mw.Mutes.ACTIONS, "shop", {}, None, True),
        (window("shop", mutes="Pages"), mw.Mutes.ACTIONS, "shop", {}, None, False),
        (window("shop", mutes="Actions"), mw.Mutes.PAGES, "shop", {}, None, False),
        (window("shop"), mw.Mutes.PAGES, "billing", {}, None, False),
        # hostile: a namespace user's window naming other namespaces covers only its own
        (window("shop", scope={"namespaces": ["billing"]}), mw.Mutes.PAGES, "billing", {}, None, False),
        (window("shop", scope={"namespaces": ["billing", "shop"]}), mw.Mutes.PAGES, "shop", {}, None, True),
        # the operator's namespace: every namespace, or the listed ones
        (window(OPERATOR), mw.Mutes.PAGES, "billing", {}, None, True),
        (window(OPERATOR, scope={"namespaces": ["shop"]}), mw.Mutes.PAGES, "billing", {}, None, False),
        (window(OPERATOR, scope={"namespaces": ["shop"]}), mw.Mutes.PAGES, "shop", {}, None, True),
        # workloads by selector: unknown labels are not covered
        (window("shop", scope={"workloadSelector": {"app": "db"}}), mw.Mutes.ACTIONS, "shop", {}, {"app": "db"}, True),
        (
            window("shop", scope={"workloadSelector": {"app": "db"}}),
            mw.Mutes.ACTIONS,
            "shop",
            {},
            {"app": "web"},
            False,
        ),
        (window("shop", scope={"workloadSelector": {"app": "db"}}), mw.Mutes.PAGES, "shop", {}, None, False),
        # alert matchers
        (
            window("shop", scope={"matchers": [{"label": "alertname", "value": "DBDown"}]}),
            mw.Mutes.PAGES,
            "shop",
            {"alertname": "DBDown"},
            None,
            True,
        ),
        (
            window("shop", scope={"matchers": [{"label": "alertname", "value": "DBDown"}]}),
            mw.Mutes.PAGES,
            "shop",
            {"alertname": "Other"},
            None,
            False,
        ),
        # not active
        (window("shop", start="2026-03-01T11:30:00Z"), mw.Mutes.PAGES, "shop", {}, None, False),
    ],
)
def test_muted(
    w: mw.Window,
    what: mw.Mutes,
    namespace: str,
    labels: dict[str, str],
    workload_labels: dict[str, str] | None,
    muted: bool,
) -> None:
    found = mw.muted([w], what, namespace, labels, workload_labels, OPERATOR, NOW)
    assert (found is not None) == muted
    if found is not None:
        assert found.window == f"{w.namespace}/db-migration" and found.until == at("2026-03-01T12:00:00+00:00")


DB = {"workloadSelector": {"app": "db"}}


@pytest.mark.parametrize(
    ("w", "what", "namespace", "now", "selects"),
    [
        # a window selecting workloads, active, muting pages in its namespace: the workload's labels are read
        (window("shop", scope=DB), mw.Mutes.PAGES, "shop", NOW, True),
        (window("shop", scope=DB, mutes="Pages"), mw.Mutes.PAGES, "shop", NOW, True),
        # not when it mutes only actions, is not open, or is somewhere else (hostile: another tenant's window)
        (window("shop", scope=DB, mutes="Actions"), mw.Mutes.PAGES, "shop", NOW, False),
        (window("shop", scope=DB), mw.Mutes.PAGES, "shop", at("2026-03-01T13:00:00+00:00"), False),
        (window("shop", scope={**DB, "namespaces": ["billing"]}), mw.Mutes.PAGES, "billing", NOW, False),
        (window(OPERATOR, scope=DB), mw.Mutes.PAGES, "billing", NOW, True),
        # no selector: no read
        (window("shop"), mw.Mutes.PAGES, "shop", NOW, False),
    ],
)
def test_selects_workloads(w: mw.Window, what: mw.Mutes, namespace: str, now: dt.datetime, selects: bool) -> None:
    assert mw.selects_workloads([w], what, namespace, OPERATOR, now) == selects


def test_a_workload_selector_holds_the_pages_of_its_workload_only() -> None:
    w = window("shop", scope=DB, mutes="Pages")
    assert mw.muted([w], mw.Mutes.PAGES, "shop", {}, {"app": "db", "tier": "data"}, OPERATOR, NOW) is not None
    assert mw.muted([w], mw.Mutes.PAGES, "shop", {}, {"app": "web"}, OPERATOR, NOW) is None
    assert mw.muted([w], mw.Mutes.PAGES, "shop", {}, None, OPERATOR, NOW) is None  # no target, or unreadable


def test_the_window_ending_last_is_the_one_named() -> None:
    short, long = (
        window("shop"),
        mw.Window("shop", "long", spec(start="2026-03-01T10:00:00Z", end="2026-03-02T00:00:00Z")),
    )
    found = mw.muted([short, long], mw.Mutes.PAGES, "shop", {}, None, OPERATOR, NOW)
    assert found is not None and found.window == "shop/long"


def test_mark_flips_once_and_says_so() -> None:
    mute = mw.Mute("shop/db-migration", at("2026-03-01T12:00:00+00:00"), "schema change")
    conds, said = mw.mark([], mute, NOW)
    assert said and "shop/db-migration" in said and conds[0].status == base.ConditionStatus.TRUE
    assert mw.mark(conds, mute, NOW) == (conds, None)
    ended, said = mw.mark(conds, None, NOW)
    assert said and said.startswith("maintenance over") and ended[0].status == base.ConditionStatus.FALSE
    assert mw.mark(ended, None, NOW) == (ended, None)


@pytest.mark.parametrize(
    ("w", "reason"),
    [
        (window("shop"), "Accepted"),
        (window("shop", scope={"namespaces": ["kube-system"]}), "NamespacesNotAllowed"),
        (window(OPERATOR, scope={"namespaces": ["kube-system"]}), "Accepted"),
        (mw.Window("shop", "x", spec(recurring={"timeZone": "Mars/Olympus"})), "UnknownTimeZone"),
    ],
)
def test_check(w: mw.Window, reason: str) -> None:
    assert mw.check(w, OPERATOR).reason == reason


def test_the_guardrail_refuses_with_the_window_name_and_needs_no_human() -> None:
    mute = mw.Mute("shop/db-migration", at("2026-03-01T12:00:00+00:00"), "schema change")
    subject = guardrails.Subject("Deployment", "the Deployment", {}, {})
    refused = guardrails.refusal(runbook.Guardrails(), None, subject, {}, NOW, mute)
    assert refused is not None and refused.reason == "Maintenance" and not refused.human
    assert "MaintenanceWindow shop/db-migration (schema change)" in refused.text
    assert guardrails.refusal(runbook.Guardrails(), None, subject, {}, NOW) is None


def test_hold_once_then_resume_from_level_one() -> None:
    status = incident.IncidentStatus(phase=incident.Phase.TRIGGERED)
    status.escalation.started_at, status.escalation.level = at("2026-03-01T10:30:00+00:00"), 2
    mute = mw.Mute("shop/db-migration", at("2026-03-01T12:00:00+00:00"))
    held = mw.hold(status, mute, NOW)
    assert held is not None and mw.in_maintenance(held) and held.timeline[-1].type == "Maintenance"
    assert mw.hold(held, mute, NOW) is None
    end = at("2026-03-01T12:00:00+00:00")
    back = mw.resume(held, end)
    assert not mw.in_maintenance(back) and back.timeline[-1].type == "MaintenanceEnded"
    assert (back.escalation.started_at, back.escalation.level) == (end, 0)
    assert mw.resume(back, end) is back


def test_a_held_runbook_message_is_sent_when_the_window_ends() -> None:
    spec = incident.IncidentSpec(title="db slow", severity="critical")
    status = incident.IncidentStatus(phase=incident.Phase.TRIGGERED, first_seen=NOW)
    mute = mw.Mute("shop/db-work", at("2026-03-01T12:00:00+00:00"))
    held = mw.hold_message(status, mute, "action/tell/abc", "action-notify", ["hook"], "db slow", NOW)
    assert mw.in_maintenance(held) and [(n.key, n.result) for n in held.escalation.notifications] == [
        ("action/tell/abc", mw.HELD)
    ]
    again = mw.hold_message(held, mute, "action/tell/abc", "action-notify", ["hook"], "db slow", NOW)
    assert len(again.escalation.notifications) == 1  # held once
    # during the window the escalation does not send it (it is not Pending)
    during = escalation.decide(POLICY, incident.Incident(spec=spec, status=held), NOW, resolve)
    assert "action-notify" not in [s.kind for s in during.sends]
    end = at("2026-03-01T12:00:00+00:00")
    back = mw.resume(held, end)
    after = escalation.decide(POLICY, incident.Incident(spec=spec, status=back), end, resolve)
    [told] = [s for s in after.sends if s.kind == "action-notify"]
    assert (told.key, told.channels, told.text) == ("action/tell/abc", ("hook",), "db slow")
    assert [n.result for n in after.status.escalation.notifications if n.key == told.key] == [delivery.PENDING]
    # a resolved Incident's held message stays held: nobody needs it any more
    resolved = held.model_copy(deep=True)
    resolved.phase = incident.Phase.RESOLVED
    assert [n.result for n in mw.resume(resolved, end).escalation.notifications] == [mw.HELD]

"""The per-person page budget across a policy's Incidents, as tables in virtual time: held, summarised, never dropped.

Each scenario opens Incidents of one policy at the given minutes, looks at every open Incident
every 30 virtual seconds the way the executor does (``escalation.decide`` then
``page_budget.apply`` with the other Incidents' entries), records every claimed send as
Delivered, and compares what reached the person with the cap.
"""

import collections
import datetime as dt

import pytest

from oncall_operator.api import incident, policy
from oncall_operator.domain import delivery, escalation, lifecycle, page_budget
from oncall_operator.executor import page_budget as ledger

T0 = dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC)
POLICY = policy.EscalationPolicySpec.model_validate(
    {
        "ackTimeout": "5m",
        "levels": [{"name": "primary", "after": "0", "targets": [{"user": "Ada"}]}],
        "channels": [{"name": "hook", "type": "Webhook", "secretRef": {"name": "hook", "key": "url"}}],
        "severities": [{"severity": "critical", "response": "Page", "channels": ["hook"]}],
    }
)


def resolve(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
    return [escalation.Recipient(name=target.user or "?")]


def at(minute: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)


def opened(minute: float) -> incident.Incident:
    spec = incident.IncidentSpec(title=f"disk full {minute}", severity="critical")
    return incident.Incident(spec=spec, status=lifecycle.opened(spec, at(minute)))


def look(
    incidents: dict[str, incident.Incident], me: str, now: dt.datetime, cap: int | None
) -> tuple[escalation.Send, ...]:
    inc = incidents[me]
    assert inc.status is not None
    others = [
        e for ref, o in incidents.items() if ref != me and o.status for e in page_budget.entries(ref, o.status, now)
    ]
    decided = escalation.decide(POLICY, inc, now, resolve)
    before = {n.key for n in inc.status.escalation.notifications}
    out = page_budget.apply(decided.status, decided.sends, before, others, me, cap, now, resolve)
    for n in out.status.escalation.notifications:
        if n.result == delivery.PENDING:
            delivery.settle(n, True, "ok")
    incidents[me] = inc.model_copy(update={"status": out.status})
    return out.sends


def run(
    opens: list[float], cap: int | None, minutes: int
) -> tuple[list[tuple[float, str, str]], dict[str, incident.Incident]]:
    """Every send to Ada as (minute, kind, text), and the Incidents at the end."""
    incidents: dict[str, incident.Incident] = {}
    sent: list[tuple[float, str, str]] = []
    for tick in range(minutes * 2 + 1):
        minute = tick / 2
        for n, o in enumerate(opens):
            if o == minute:
                incidents[f"shop/inc-{n}"] = opened(o)
        for ref in sorted(incidents):
            sent += [(minute, s.kind, s.text) for s in look(incidents, ref, at(minute), cap) if s.recipients]
    return sent, incidents


def per_hour(sent: list[tuple[float, str, str]]) -> int:
    """The most messages Ada got in any rolling hour."""
    return max((sum(1 for m, _, _ in sent if t - 60 < m <= t) for t, _, _ in sent), default=0)


@pytest.mark.parametrize(
    ("opens", "cap", "minutes", "pages", "summaries", "counted"),
    [
        # no cap: every Incident pages at once (each page repeated once when not acknowledged)
        ([0, 1, 2], None, 10, 3, 0, []),
        # cap 3, five Incidents in five minutes: three pages; two pages and the five reminders (ack overdue)
        # held; one summary counting those 7 when the first page is an hour old
        ([0, 1, 2, 3, 4], 3, 90, 3, 1, [7]),
        # cap 1: the storm is one page, then one summary an hour later counting the 4 other pages and 5 reminders
        ([0, 0.5, 1, 1.5, 2], 1, 70, 1, 1, [9]),
        # cap 2 over two hours: the summary at 60 makes room for the page at 65; the next summary an hour later
        ([0, 1, 2, 3, 65, 66, 67], 2, 150, 3, 2, [6, 5]),
    ],
)
def test_the_budget_holds_and_summarises(
    opens: list[float], cap: int | None, minutes: int, pages: int, summaries: int, counted: list[int]
) -> None:
    sent, incidents = run(opens, cap, minutes)
    first_pages = [s for s in sent if s[1] == "page"]
    summary = [s for s in sent if s[1] == page_budget.SUMMARY_KIND]
    assert len(first_pages) == pages
    assert len(summary) == summaries
    assert [int(text.split(" ")[0]) for _, _, text in summary] == counted
    if cap is not None:
        assert per_hour(sent) <= cap
    # nothing dropped: every page and reminder was sent, or held and then counted in a summary, or is still held
    results = collections.Counter(
        n.result
        for o in incidents.values()
        if o.status
        for n in o.status.escalation.notifications
        if n.kind in escalation.PAGE_KINDS
    )
    assert set(results) <= {delivery.DELIVERED, page_budget.SUMMARIZED, page_budget.HELD}
    assert results[page_budget.SUMMARIZED] == sum(counted)
    assert results[delivery.DELIVERED] == len([s for s in sent if s[1] in escalation.PAGE_KINDS])


def test_a_held_page_is_recorded_on_its_incident() -> None:
    _, incidents = run([0, 1], cap=1, minutes=2)
    st = incidents["shop/inc-1"].status
    assert st is not None
    (held,) = [n for n in st.escalation.notifications if n.result == page_budget.HELD]
    assert held.user == "Ada" and "maxPagesPerPersonPerHour 1" in held.message
    assert [e.type for e in st.timeline].count("PageHeld") == 1
    # no acknowledgement or resolution is told about a page Ada never got
    st.phase = incident.Phase.RESOLVED
    decided = escalation.decide(POLICY, incidents["shop/inc-1"].model_copy(update={"status": st}), at(3), resolve)
    assert [s.kind for s in decided.sends] == []


def test_the_summary_names_the_held_pages_and_comes_from_one_incident() -> None:
    sent, incidents = run([0, 1, 2, 3], cap=1, minutes=62)
    (summary,) = [text for _, kind, text in sent if kind == page_budget.SUMMARY_KIND]
    # three pages and the four reminders of the Incidents whose page Ada did not get or did not answer
    assert summary.startswith("7 pages held back since 2026-03-10T22:01:00+00:00")
    for n in (1, 2, 3):
        assert f"shop/inc-{n}: Level 1 (primary)." in summary
    carriers = [
        ref for ref, o in incidents.items() if o.status and any(e.type == "PageSummary" for e in o.status.timeline)
    ]
    assert carriers == ["shop/inc-0"]  # the first to be looked at that holds one (its ack reminder)
    # every held page is marked as counted, on its own Incident too
    held = [n for o in incidents.values() if o.status for n in o.status.escalation.notifications if n.result == "Held"]
    assert held == []


def test_a_page_to_two_people_is_held_only_for_the_one_over_budget() -> None:
    st = opened(0).status
    assert st is not None
    send = escalation.Send(
        "page/L1/loop0@1",
        "page",
        1,
        0,
        ("hook",),
        (resolve(policy.Target(user="Ada"), T0)[0], escalation.Recipient(name="Bob")),
        "L1",
    )
    note = incident.Notification(key=send.key, at=T0, level=1, user="Ada, Bob", channel="hook", kind="page", result="")
    delivery.claim(note, T0, delivery.ANONYMOUS)
    st.escalation.notifications.append(note)
    used = [page_budget.Entry("shop/other", "page/x", "Ada", T0 - dt.timedelta(minutes=5), page_budget.SENT)]
    out = page_budget.apply(st, [send], set(), used, "shop/inc", 1, T0, resolve)
    assert [r.name for s in out.sends for r in s.recipients] == ["Bob"]
    by_key = {n.key: (n.user, n.result) for n in out.status.escalation.notifications}
    assert by_key == {send.key: ("Bob", delivery.PENDING), f"held/{send.key}": ("Ada", page_budget.HELD)}
    assert out.wake_at == T0 + dt.timedelta(minutes=55, seconds=1)


@pytest.mark.parametrize(
    ("times", "cap", "now", "room"),
    [
        ([], 3, 0, 0),
        ([0, 10], 3, 20, 20),
        ([0, 10, 20], 3, 30, 60 + 1 / 60),
        ([0, 10, 20, 25], 3, 30, 70 + 1 / 60),
        ([-90, 10, 20], 3, 30, 30),  # an hour and a half ago no longer counts
    ],
)
def test_room_at(times: list[float], cap: int, now: float, room: float) -> None:
    assert page_budget.room_at([at(t) for t in times], cap, at(now)) == at(room)


@pytest.mark.parametrize(
    ("namespace", "spec", "key"),
    [
        ("shop", {"escalationPolicyRef": {"name": "oncall"}}, ("policy", "shop", "oncall", "shop")),
        (
            "shop",
            {"escalationPolicyRef": {"name": "default", "namespace": "oncall-system"}},
            ("policy", "oncall-system", "default", "shop"),
        ),
        ("shop", {"runbookRef": {"name": "disk"}}, ("runbook", "shop", "disk", "shop")),
        ("shop", {}, None),
    ],
)
def test_ledger_key(namespace: str, spec: dict[str, object], key: tuple[str, str, str, str] | None) -> None:
    assert ledger.ledger_key(namespace, spec) == key


def paged_status(minute: float) -> dict[str, object]:
    note = {
        "key": "page/L1/loop0@1",
        "at": at(minute).isoformat(),
        "level": 1,
        "user": "Ada",
        "channel": "hook",
        "kind": "page",
        "result": "Delivered",
    }
    return {"phase": "Triggered", "escalation": {"notifications": [note]}}


def test_a_hostile_tenant_cannot_spend_another_namespace_budget() -> None:
    """An Incident in ``evil`` naming shop's policy is never escalated, and its (claimed) pages count nowhere."""
    now = at(1)
    evil = ledger.index_entry(
        "evil",
        "inc",
        {"escalationPolicyRef": {"name": "oncall", "namespace": "shop"}},
        paged_status(0),
        now,
        "oncall-system",
    )
    assert evil == {}
    # its own policy named "oncall" is another ledger: Ada of evil is not Ada of shop
    own = ledger.index_entry(
        "evil", "inc", {"escalationPolicyRef": {"name": "oncall"}}, paged_status(0), now, "oncall-system"
    )
    assert list(own) == [("policy", "evil", "oncall", "evil")]
    book = ledger.Ledger()
    book.see("evil/inc", own)
    assert book.others({("policy", "shop", "oncall", "shop")}) == []
    assert [e.person for e in book.others({("policy", "evil", "oncall", "evil")})] == ["Ada"]


def test_the_index_keeps_only_what_the_budget_needs() -> None:
    spec = {"escalationPolicyRef": {"name": "oncall"}}
    assert ledger.index_entry("shop", "old", spec, paged_status(0), at(61), "oncall-system") == {}
    assert (
        ledger.index_entry(
            "shop",
            "bad",
            spec,
            {"escalation": {"notifications": ["x", {"kind": "page", "at": "?"}]}},
            at(1),
            "oncall-system",
        )
        == {}
    )
    (found,) = ledger.index_entry("shop", "new", spec, paged_status(0), at(59), "oncall-system").values()
    assert found == (page_budget.Entry("shop/new", "page/L1/loop0@1", "Ada", at(0), page_budget.SENT),)


def test_an_incident_seen_again_replaces_its_entries_and_a_deleted_one_leaves_none() -> None:
    key = ("policy", "shop", "oncall", "shop")
    one = page_budget.Entry("shop/a", "page/1", "Ada", T0, page_budget.SENT)
    book = ledger.Ledger()
    book.see("shop/a", {key: (one,)})
    book.see("shop/a", {key: (one, one)})
    assert len(book.others({key})) == 2
    book.see("shop/a", {})  # nothing for the budget any more (its pages are older than an hour)
    assert book.others({key}) == [] and book.index == {}
    book.see("shop/a", {key: (one,)})
    book.forget("shop/a")
    assert book.index == {}


def test_this_process_writes_win_over_a_stale_index() -> None:
    key = ("policy", "shop", "oncall", "shop")
    stale = page_budget.Entry("shop/a", "page/1", "Ada", T0, page_budget.SENT)
    book = ledger.Ledger(index={key: {"shop/a": (stale,)}})
    fresh = (stale, page_budget.Entry("shop/a", "page/2", "Ada", T0, page_budget.SENT))
    book.note("shop/a", key, fresh)
    assert book.others({key}) == list(fresh)


def test_a_resolved_incident_keeps_its_held_pages_until_a_summary_counts_them() -> None:
    incidents = {"shop/a": opened(0), "shop/b": opened(0)}
    look(incidents, "shop/a", at(0), 1)
    look(incidents, "shop/b", at(0), 1)
    st = incidents["shop/b"].status
    assert st is not None and [n.result for n in st.escalation.notifications] == [page_budget.HELD]
    st.phase = incident.Phase.RESOLVED
    assert look(incidents, "shop/b", at(1), 1) == ()
    assert st is not None and not incidents["shop/b"].status.escalation.closed  # type: ignore[union-attr]
    (summary,) = look(incidents, "shop/b", at(60), 1)
    assert summary.kind == page_budget.SUMMARY_KIND and summary.text.startswith("1 page held back")
    look(incidents, "shop/b", at(61), 1)
    assert incidents["shop/b"].status.escalation.closed  # type: ignore[union-attr]


@pytest.mark.parametrize(("flooded", "held"), [("evil", False), ("shop", True)])
def test_a_tenant_flooding_the_shared_policy_does_not_hold_another_tenants_pages(flooded: str, held: bool) -> None:
    """Five pages to Ada this hour from ``flooded``'s Incidents through the operator's policy; cap 2."""
    shared = ("policy", "oncall-system", "default")
    flood = tuple(
        page_budget.Entry(f"{flooded}/i{n}", f"page/L1/loop0@{n}", "Ada", T0 - dt.timedelta(minutes=n + 1), "sent")
        for n in range(5)
    )
    book = ledger.Ledger(index={(*shared, flooded): {f"{flooded}/i0": flood}})
    spec = POLICY.model_copy(update={"noise": policy.Noise(max_pages_per_person_per_hour=2)})
    inc = opened(0)
    assert inc.status is not None
    body = {
        "metadata": {"namespace": "shop", "name": "db-down"},
        "spec": {"escalationPolicyRef": {"name": "default", "namespace": "oncall-system"}},
    }
    decided = escalation.decide(spec, inc, T0, resolve)
    out = ledger.budgeted(book, lambda ns, name: None, spec, body, inc.status, decided, T0, resolve, delivery.ANONYMOUS)
    assert [s.kind for s in out.sends] == ([] if held else ["page"])
    assert any(n.result == page_budget.HELD for n in out.status.escalation.notifications) == held

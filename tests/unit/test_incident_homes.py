"""What the Incident handler keeps of every Incident instead of Kopf indices (issue 18: Kopf's listing cost).

A Kopf index on Incidents made each listed Incident a readiness toggle waking every waiting worker:
a takeover with 5,000 open Incidents took 4 minutes before its first page. The handler now feeds
the intake's names and the page budget's entries itself.
"""

import asyncio
import datetime as dt
from typing import Any

from oncall_operator.adapters import peering
from oncall_operator.executor import indices, page_budget

NOW = dt.datetime.now(dt.UTC)


def body(namespace: str, name: str, paged: bool = True) -> dict[str, Any]:
    note = {
        "key": "page/L1/loop0@x",
        "kind": "page",
        "level": 1,
        "user": "Ada",
        "channel": "hook",
        "result": "Delivered",
    }
    notes = [{**note, "at": NOW.isoformat()}]
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"escalationPolicyRef": {"name": "pager"}},
        "status": {"phase": "Triggered", "escalation": {"notifications": notes if paged else []}},
    }


def test_names_and_budget_entries_follow_the_incidents_events() -> None:
    found = indices.Indices({}, {}, {}, "oncall-system")
    indices.see_incident(found, body("shop", "db"))
    indices.see_incident(found, body("blog", "db", paged=False))
    assert set(found.homes.get("db", ())) == {"shop", "blog"} and found.homes.get("web", ()) == ()
    key = ("policy", "shop", "pager", "shop")
    assert [e.person for e in found.pages.others({key})] == ["Ada"]
    indices.see_incident(found, body("shop", "db"), deleted=True)
    assert found.homes.get("db") == ("blog",) and found.pages.others({key}) == []
    indices.see_incident(found, body("blog", "db"), deleted=True)
    assert "db" not in found.homes


async def test_a_listed_incident_never_overrides_what_the_handler_saw_while_the_list_ran() -> None:
    found = indices.Indices({}, {}, {}, "oncall-system")
    ledger, key = found.pages, ("policy", "shop", "pager", "shop")
    indices.see_incident(found, body("shop", "before"))  # seen before the list: the list is newer
    gate = asyncio.Event()
    ledger.listing = asyncio.create_task(gate.wait())  # the list of every Incident, still running
    try:
        indices.see_incident(found, body("shop", "db", paged=False))  # newer than the list's copy
        indices.see_incident(found, body("shop", "gone"), deleted=True)
        for name in ("db", "gone", "before", "new"):  # the list's copies: each paged Ada
            raw = body("shop", name)
            ledger.listed(f"shop/{name}", page_budget.index_entry("shop", name, raw["spec"], raw["status"], NOW, ""))
    finally:
        gate.set()
        await ledger.listing
    assert sorted(e.incident for e in ledger.others({key})) == ["shop/before", "shop/new"]
    indices.see_incident(found, body("shop", "db"))  # after the list: the handler's events as ever
    assert sorted(e.incident for e in ledger.others({key})) == ["shop/before", "shop/db", "shop/new"]


def test_a_list_from_an_earlier_acting_term_is_listed_again() -> None:
    """A replica that stood by (Kopf's watches stopped) and acts again lists the budget afresh."""
    was = peering.acting()
    try:
        peering.set_acting(True)
        ledger = page_budget.Ledger()
        assert not ledger.current()  # never listed
        ledger.listed_term = peering.term()
        assert ledger.current()
        peering.set_acting(True)  # still acting: the same term
        assert ledger.current()
        peering.set_acting(False)
        peering.set_acting(True)
        assert not ledger.current()
    finally:
        peering.set_acting(was)

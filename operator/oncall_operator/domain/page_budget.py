"""The per-person page budget of an escalation policy, across its Incidents: who is paged now, whose page is held.

A storm of Incidents under one policy pages the same on-call person again and again (GoAlert
rate-limits per contact method for this). With ``spec.noise.maxPagesPerPersonPerHour`` a person
gets at most that many messages per rolling hour from the policy's Incidents. A page beyond it
is held: recorded on its own Incident as a notification with result ``Held`` and a ``PageHeld``
timeline entry, never sent alone, never dropped. As soon as the person has room, one summary
message ("3 pages held back since ...") counts and names every held page of the policy; it is
sent from an Incident that holds one of them, claimed like a page (Pending, then Delivered),
and each held notification becomes ``Summarized`` when its Incident sees the summary.

The budget's state is the Incidents: :func:`entries` reads one Incident's pages of the last
hour, its held pages and its summaries, and the operator keeps them per policy in a Kopf index
of Incidents (:mod:`oncall_operator.handlers.quiet`), so a restarted operator counts the same.
Pure: the Incident's decided status and sends, the other Incidents' entries and ``now`` go in.
Tables in ``tests/unit/test_page_budget.py``.
"""

import collections
import collections.abc as cabc
import dataclasses
import datetime as dt
import hashlib

from oncall_operator.api import incident, policy
from oncall_operator.domain import delivery, escalation, lifecycle

HOUR = dt.timedelta(hours=1)
SECOND = dt.timedelta(seconds=1)
HELD, SUMMARIZED = "Held", "Summarized"
SUMMARY_KIND = "page-summary"
"""A summary of held pages, in the notifications: counted in the budget, not a page (no ack or resolve follows it)."""
SENT, HELD_STATE, SUMMARY = "sent", "held", "summary"
COUNTED = ("", delivery.PENDING, delivery.DELIVERED)
"""Results of a page that counts: being sent, or sent (a failed one reached nobody)."""
SHOWN = 5
"""Held pages a summary names one by one; the rest are counted."""


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One message to one person (sent, held, or a summary), on one Incident (``namespace/name``)."""

    incident: str
    key: str
    person: str
    at: dt.datetime
    state: str
    text: str = ""


@dataclasses.dataclass(frozen=True)
class Applied:
    status: incident.IncidentStatus
    sends: tuple[escalation.Send, ...]
    wake_at: dt.datetime | None


def _people(n: incident.Notification) -> list[str]:
    return [p for p in n.user.split(", ") if p and p != escalation.NOBODY]


def entries(ref: str, status: incident.IncidentStatus, now: dt.datetime) -> tuple[Entry, ...]:
    """One Incident's part of the budget: its messages of the last hour, its held pages, its latest summaries."""
    found: dict[tuple[str, str], Entry] = {}
    latest: dict[str, Entry] = {}
    for n in status.escalation.notifications:
        for person in _people(n):
            if n.kind == SUMMARY_KIND:
                entry = Entry(ref, n.key, person, n.at, SUMMARY)
                if person not in latest or latest[person].at < n.at:
                    latest[person] = entry
                if now - HOUR < n.at and n.result != delivery.FAILED:
                    found.setdefault((n.key, person), entry)
            elif n.result == HELD:
                found.setdefault((n.key, person), Entry(ref, n.key, person, n.at, HELD_STATE, n.text[:200]))
            elif n.kind in escalation.PAGE_KINDS and n.result in COUNTED and now - HOUR < n.at:
                found.setdefault((n.key, person), Entry(ref, n.key, person, n.at, SENT))
    for person, entry in latest.items():
        found.setdefault((entry.key, person), entry)
    return tuple(found.values())


def room_at(times: cabc.Sequence[dt.datetime], cap: int, now: dt.datetime) -> dt.datetime:
    """When a person who got messages at ``times`` (the last hour's) may get one more under ``cap``."""
    recent = sorted(t for t in times if now - HOUR < t <= now)
    if len(recent) < cap:
        return now
    return recent[len(recent) - cap] + HOUR + SECOND


def summary_text(held: cabc.Sequence[Entry]) -> str:
    """``3 pages held back since ... (page budget): ns/a: Level 1 (primary).; ...; and 2 more``."""
    first = min(e.at for e in held)
    shown = "; ".join(f"{e.incident}: {e.text}" for e in held[:SHOWN])
    more = f"; and {len(held) - SHOWN} more" if len(held) > SHOWN else ""
    n = len(held)
    return f"{n} page{'s' if n > 1 else ''} held back since {first.isoformat()} (page budget per hour): {shown}{more}"


def _short(person: str) -> str:
    return hashlib.sha256(person.encode()).hexdigest()[:12]


class _Budget:
    """One Incident's look at the budget: who has used how much, what is still held, and the status being edited."""

    def __init__(
        self,
        me: str,
        status: incident.IncidentStatus,
        new: cabc.Collection[str],
        others: cabc.Iterable[Entry],
        now: dt.datetime,
    ):
        self.me, self.now = me, now
        self.status = incident.IncidentStatus.model_validate(status.model_dump())
        every = [e for e in others if e.incident != me] + [e for e in entries(me, status, now) if e.key not in new]
        self.summarised: dict[str, dt.datetime] = {}
        for e in every:
            if e.state == SUMMARY and e.at > self.summarised.get(e.person, e.at - SECOND):
                self.summarised[e.person] = e.at
        self.times: dict[str, list[dt.datetime]] = collections.defaultdict(list)
        for e in every:
            if e.state in (SENT, SUMMARY) and now - HOUR < e.at <= now:
                self.times[e.person].append(e.at)
        self.held: dict[str, list[Entry]] = collections.defaultdict(list)
        for e in sorted(every, key=lambda e: (e.at, e.incident, e.key)):
            if e.state == HELD_STATE and not self.covered(e):
                self.held[e.person].append(e)

    def covered(self, e: Entry) -> bool:
        """A held page is counted in a summary sent after it was held (the summary names the pages held before)."""
        at = self.summarised.get(e.person)
        return at is not None and e.at < at

    def used(self, person: str) -> int:
        return len(self.times[person])


def apply(
    status: incident.IncidentStatus,
    sends: cabc.Sequence[escalation.Send],
    before: cabc.Collection[str],
    others: cabc.Iterable[Entry],
    me: str,
    cap: int | None,
    now: dt.datetime,
    resolve: escalation.Resolver,
    who: delivery.Claimant = delivery.ANONYMOUS,
) -> Applied:
    """The decision under the budget: pages beyond it held, due summaries added, and when to look again.

    ``status`` and ``sends`` are :func:`escalation.decide`'s; ``before`` the notification keys the
    Incident had before it (a Pending step sent again is not a new page); ``others`` the entries of
    the policy's other Incidents; ``me`` this Incident as ``namespace/name``. ``cap`` None: no cap,
    but pages held while there was one are still summarised.
    """
    new = {s.key for s in sends if s.key not in before and s.kind in escalation.PAGE_KINDS}
    b = _Budget(me, status, new, others, now)
    limit = cap or 1_000_000
    out = [s for s in sends if s.key in before or s.kind not in escalation.PAGE_KINDS]
    for person, held in list(b.held.items()):
        ripe = [e for e in held if e.at < now]  # a page held this second waits for the next summary
        mine = [n for n in b.status.escalation.notifications if n.result == HELD and person in _people(n)]
        if ripe and any(e.incident == me for e in ripe) and b.used(person) < limit and mine:
            out.append(_summarise(b, person, ripe, sorted({n.channel for n in mine}), resolve, who))
            b.held[person] = [e for e in held if not b.covered(e)]
    for send in sends:
        if send.key in before or send.kind not in escalation.PAGE_KINDS:
            continue
        kept = tuple(r for r in send.recipients if not b.held[r.name] and b.used(r.name) < limit)
        for r in kept:
            b.times[r.name].append(now)
        if len(kept) == len(send.recipients):
            out.append(send)
            continue
        _hold(b, send, kept, limit)
        if kept:
            out.append(dataclasses.replace(send, recipients=kept))
    for n in b.status.escalation.notifications:  # held pages another summary (or this one) counted
        people = _people(n)
        if n.result == HELD and people and all(b.covered(Entry(me, n.key, p, n.at, HELD_STATE)) for p in people):
            n.result, n.message = SUMMARIZED, f"counted in the summary sent at {b.summarised[people[0]].isoformat()}"
    waiting = {p for n in b.status.escalation.notifications if n.result == HELD for p in _people(n)}
    if waiting and b.status.phase == incident.Phase.RESOLVED:
        b.status.escalation.closed = False  # a resolved Incident's held pages still go out in a summary
    wakes = [max(room_at(b.times[p], limit, now), now + SECOND) for p in waiting]
    return Applied(b.status, tuple(out), min(wakes, default=None))


def _summarise(
    b: _Budget,
    person: str,
    ripe: list[Entry],
    channels: list[str],
    resolve: escalation.Resolver,
    who: delivery.Claimant,
) -> escalation.Send:
    text = summary_text(ripe)[:1024]
    key = f"summary/{_short(person)}@{int(b.now.timestamp())}"
    for channel in channels:
        note = incident.Notification(
            key=key, at=b.now, level=0, user=person[:256], channel=channel, kind=SUMMARY_KIND, result="", text=text
        )
        delivery.claim(note, b.now, who)
        b.status.escalation.notifications.append(note)
    lifecycle.add(b.status, b.now, "PageSummary", f"{text} -> {person} via {', '.join(channels)}")
    b.summarised[person] = b.now
    b.times[person].append(b.now)
    recipient = tuple(resolve(policy.Target(user=person), b.now)[:1]) or (escalation.Recipient(name=person),)
    return escalation.Send(key, SUMMARY_KIND, 0, 0, tuple(channels), recipient, text)


def _hold(b: _Budget, send: escalation.Send, kept: tuple[escalation.Recipient, ...], limit: int) -> None:
    """Record the send's held recipients on the Incident: its notes say Held (or a ``held/`` note beside them)."""
    names = [r.name for r in send.recipients if r not in kept]
    at = max([b.now, *(b.summarised[p] + SECOND for p in names if p in b.summarised)])
    why = f"{b.used(names[0])} messages to {names[0]} in the last hour (noise.maxPagesPerPersonPerHour {limit})"
    notes = [n for n in b.status.escalation.notifications if n.key == send.key]
    if kept:
        for n in notes:
            n.user = ", ".join(r.name for r in kept)[:256]
        held = notes[0].model_copy(update={"key": f"held/{send.key}"[:128], "user": ", ".join(names)[:256]})
        b.status.escalation.notifications.append(held)
        notes = [held]
    for n in notes:
        n.result, n.at, n.claimed_by, n.retry_at, n.message = HELD, at, "", None, why
    for p in names:
        b.held[p].append(Entry(b.me, send.key, p, at, HELD_STATE, send.text[:200]))
    lifecycle.add(
        b.status,
        b.now,
        "PageHeld",
        f"{send.text} -> {', '.join(names)} held: {why}; they get one summary when there is room",
    )

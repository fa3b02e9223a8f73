"""Noise control: a flapping alert group stays one Incident, and a person gets at most so many pages an hour.

Pure, tables in ``tests/unit/test_noise.py``.

**Flapping.** An alert group that resolves and fires again and again would reopen its Incident
and page on every round. :func:`flapping` says when the group has resolved ``FLAP_RESOLUTIONS``
times within ``FLAP_WINDOW`` (read from the Incident's timeline, so it survives restarts);
:mod:`.alert_incident` then takes it back to where it stood (Triggered, or Acknowledged) with its
escalation running on from the last start, counts the flap in ``status.flaps`` and says so in
the timeline, instead of reopening it with a new page.

**Page budget.** :func:`budget` decides, for the pages about to go out, which a person still
gets this hour (``cap`` per rolling hour) and which are held; a person's held pages go out as
one summary message that counts them as soon as the person has room again. Nothing is dropped:
what is held is either still held or counted in a summary. (Not yet wired into the escalation
executor: the held pages need a home that outlives one Incident.)
"""

import collections
import collections.abc as cabc
import dataclasses
import datetime as dt

from oncall_operator.api import incident

FLAP_RESOLUTIONS = 2
"""Resolutions within the window after which a firing again is a flap, not a reopening."""
FLAP_WINDOW = dt.timedelta(minutes=30)
HOUR = dt.timedelta(hours=1)
RESOLVED = "Resolved"


def flapping(
    timeline: cabc.Sequence[incident.TimelineEntry],
    now: dt.datetime,
    resolutions: int = FLAP_RESOLUTIONS,
    window: dt.timedelta = FLAP_WINDOW,
) -> bool:
    """Whether a group firing again at ``now`` is flapping: ``resolutions`` resolutions within ``window``."""
    recent = [e for e in timeline if e.type == RESOLVED and now - window <= e.at <= now]
    return len(recent) >= resolutions


@dataclasses.dataclass(frozen=True)
class Page:
    person: str
    text: str
    at: dt.datetime
    """When it was due (for a held page: when it was first held)."""


@dataclasses.dataclass(frozen=True)
class Summary:
    person: str
    count: int
    text: str


@dataclasses.dataclass(frozen=True)
class Budget:
    send: tuple[Page, ...]
    summaries: tuple[Summary, ...]
    held: tuple[Page, ...]
    """Still held, in order: the caller keeps them and passes them in again."""


def budget(
    sent: cabc.Sequence[tuple[str, dt.datetime]],
    pending: cabc.Sequence[Page],
    held: cabc.Sequence[Page],
    now: dt.datetime,
    cap: int,
) -> Budget:
    """What goes out now with at most ``cap`` messages per person per rolling hour.

    ``sent`` are (person, when) of messages already sent; ``held`` the pages held before. A
    person with held pages and room gets one summary counting all of them (one message of the
    budget); new pages beyond the budget are held after those.
    """
    used = collections.Counter(person for person, at in sent if now - HOUR < at <= now)
    waiting: dict[str, list[Page]] = collections.defaultdict(list)
    for page in held:
        waiting[page.person].append(page)
    summaries: list[Summary] = []
    for person, pages in list(waiting.items()):
        if used[person] < cap:
            used[person] += 1
            summaries.append(_summary(person, pages))
            del waiting[person]
    send: list[Page] = []
    for page in pending:
        if used[page.person] < cap and not waiting.get(page.person):
            used[page.person] += 1
            send.append(page)
        else:
            waiting[page.person].append(page)
    return Budget(tuple(send), tuple(summaries), tuple(p for pages in waiting.values() for p in pages))


def _summary(person: str, pages: cabc.Sequence[Page]) -> Summary:
    first = min(p.at for p in pages)
    shown = "; ".join(p.text for p in pages[:5]) + (f"; and {len(pages) - 5} more" if len(pages) > 5 else "")
    n = len(pages)
    text = f"{n} page{'s' if n > 1 else ''} held back since {first.isoformat()} (page budget per hour): {shown}"
    return Summary(person, n, text[:2048])

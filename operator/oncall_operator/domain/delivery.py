"""At-least-once delivery of each escalation step: claims with a lease, re-sends, retries, giving up.

A step is claimed (recorded Pending) on the Incident before it is sent, so two operators never
both send it. But a claim alone loses the page when its sender dies before recording the
outcome (measured: SIGKILL right after the claim, 6 of 6 pages lost). So a Pending
notification carries who claims it and until when (``claimedBy``, ``retryAt``), and the engine
sends it again, under the same step key (hence the same delivery id, on which receivers and
PagerDuty deduplicate), when:

- an earlier process of this pod claimed it (the operator restarted);
- its lease ran out (the sender hung or died, the outcome was never written, or another replica
  claimed it and never recorded it);
- a transient failure's backoff is over.

Transient failures are retried with backoff until the retry window (the severity's response
time, else the policy's ``ackTimeout``) since the first claim; then the notification is Failed
with the last reason, which the timeline shows. The next level never waits for this: levels
fire on time whatever became of the earlier ones. Pure: the caller passes ``now`` and who it is.
"""

import dataclasses
import datetime as dt

from oncall_operator.api import incident

PENDING, DELIVERED, FAILED = "Pending", "Delivered", "Failed"
LEASE = dt.timedelta(seconds=60)
"""How long a claim holds: twice the longest a send may take (a 20 s retry budget plus the Secret reads)."""
BACKOFF = dt.timedelta(seconds=10)
BACKOFF_MAX = dt.timedelta(minutes=2)


@dataclasses.dataclass(frozen=True)
class Claimant:
    """Who sends: one operator process (host, pid, start), and how long its claims hold."""

    identity: str = ""
    lease: dt.timedelta = LEASE
    live: frozenset[str] | None = None
    """The pods of the replicas alive (Kopf peering), when known: another pod's claim is then stale
    at once when its pod is not among them (that replica is gone: its lease need not run out)."""


ANONYMOUS = Claimant()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one step's send through one channel ended."""

    key: str
    channel: str
    ok: bool
    detail: str
    retryable: bool = False


def claim(n: incident.Notification, now: dt.datetime, who: Claimant) -> None:
    """Mark ``n`` (in place) as being sent by ``who`` now, until its lease ends."""
    n.result, n.claimed_by, n.retry_at, n.attempts = PENDING, who.identity[:128], now + who.lease, n.attempts + 1


def pod_of(identity: str) -> str:
    """The pod (or host) part of a claimant's identity ``pod/pid/start``."""
    return identity.split("/", 1)[0]


def stale(n: incident.Notification, now: dt.datetime, who: Claimant) -> bool:
    """A Pending notification nobody is sending any more: to be sent again (or given up).

    A claim of an earlier process of this pod is stale at once: a pod runs one operator process,
    so that one is gone (a restart). A claim of another pod holds until its lease ends: that
    replica may be sending right now (two operators that both believe they act, or a leader
    that lost the lead mid-send), and taking its claim over would page twice.
    """
    if n.result != PENDING:
        return False
    if n.claimed_by and n.claimed_by != who.identity:
        pod = pod_of(n.claimed_by)
        if pod == pod_of(who.identity) or (who.live is not None and pod not in who.live):
            return True
    return n.retry_at is None or n.retry_at <= now


def backoff(attempts: int) -> dt.timedelta:
    """The pause after the ``attempts``-th failed send: 10 s, doubling, at most 2 min."""
    factor: int = 2 ** max(0, attempts - 1)
    return min(BACKOFF_MAX, BACKOFF * factor)


def settle(n: incident.Notification, ok: bool, detail: str) -> None:
    """The final outcome (in place): Delivered or Failed; the claim and the text are no longer needed."""
    n.result, n.message = (DELIVERED if ok else FAILED), detail[:2048]
    n.claimed_by, n.retry_at, n.text = "", None, ""


def due_again(
    notifications: list[incident.Notification], now: dt.datetime, who: Claimant, window: dt.timedelta
) -> tuple[dict[str, list[incident.Notification]], list[incident.Notification]]:
    """The stale Pending notifications, claimed again (in place) by ``who``, by step key; and those given up.

    A notification first claimed more than ``window`` ago is Failed instead, with its last reason.
    """
    again: dict[str, list[incident.Notification]] = {}
    given_up: list[incident.Notification] = []
    for n in notifications:
        if not stale(n, now, who):
            continue
        if now >= n.at + window:
            last = n.message or f"claimed by {n.claimed_by or 'an operator'} and never recorded"
            settle(n, False, f"{n.channel}: not delivered within {_span(window)} ({n.attempts} attempts): {last}")
            given_up.append(n)
            continue
        claim(n, now, who)
        again.setdefault(n.key, []).append(n)
    return again, given_up


def record(
    notifications: list[incident.Notification],
    outcomes: list[Outcome],
    now: dt.datetime,
    who: Claimant,
    window: dt.timedelta,
) -> list[incident.Notification]:
    """Write the outcomes (in place) onto the notifications ``who`` claimed; returns the ones Failed now.

    A transient failure inside the window stays Pending, released, to be sent again after its
    backoff; a permanent one, or one past the window, is Failed.
    """
    found = {(o.key, o.channel): o for o in outcomes}
    failed: list[incident.Notification] = []
    for n in notifications:
        o = found.get((n.key, n.channel))
        if o is None or n.result != PENDING or (n.claimed_by and n.claimed_by != who.identity):
            continue  # not ours any more: whoever claimed it since records it
        if o.ok:
            settle(n, True, o.detail)
        elif o.retryable and now + backoff(n.attempts) < n.at + window:
            n.claimed_by, n.retry_at, n.message = "", now + backoff(n.attempts), o.detail[:2048]
        else:
            late = o.retryable and f"not delivered within {_span(window)} ({n.attempts} attempts): "
            settle(n, False, (late or "") + o.detail)
            failed.append(n)
    return failed


def pending(notifications: list[incident.Notification]) -> bool:
    return any(n.result == PENDING for n in notifications)


def next_retry(notifications: list[incident.Notification]) -> dt.datetime | None:
    """When the earliest Pending notification is due again."""
    return min((n.retry_at for n in notifications if n.result == PENDING and n.retry_at), default=None)


def _span(window: dt.timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 and seconds >= 60 else f"{seconds}s"

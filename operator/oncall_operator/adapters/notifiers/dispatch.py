"""From the escalation engine's decisions to messages on the wire.

The engine (pure) says "send step K of kind X to channels A and B for these people"; this
module turns that into a :class:`~oncall_operator.domain.notices.Notice`, reads each channel's
Secret, builds its sender and sends every step to every channel at once. It returns one
result per (step key, channel), which the caller writes back onto the Incident's
notifications: Delivered, or Failed with the reason.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt

import aiohttp

from oncall_operator.adapters import notifiers
from oncall_operator.api import incident, policy
from oncall_operator.domain import escalation, notices

SecretReader = cabc.Callable[[policy.Channel], cabc.Awaitable[str | None]]

KIND = {
    "page": notices.NoticeKind.PAGE,
    "reminder": notices.NoticeKind.REMINDER,
    "status-update": notices.NoticeKind.REMINDER,
    "notify": notices.NoticeKind.NOTIFY,
    "action-notify": notices.NoticeKind.NOTIFY,
    "acknowledge": notices.NoticeKind.ACKNOWLEDGE,
    "resolve": notices.NoticeKind.RESOLVE,
}


@dataclasses.dataclass(frozen=True)
class Result:
    key: str
    channel: str
    ok: bool
    detail: str
    retryable: bool = False


def notice(send: escalation.Send, inc: incident.Incident, now: dt.datetime) -> notices.Notice:
    status = inc.status or incident.IncidentStatus()
    actor = {"acknowledge": status.acknowledged_by, "resolve": status.resolved_by}.get(send.kind, "")
    return notices.Notice(
        kind=KIND[send.kind],
        namespace=inc.metadata.namespace,
        name=inc.metadata.name,
        title=inc.spec.title,
        severity=inc.spec.severity,
        timestamp=now,
        summary=send.text,
        level=send.level,
        recipients=send.recipients,
        target=status.target,
        actor=actor,
        category=inc.spec.source.alert_name or inc.spec.source.type.value,
        step=send.key,
    )


async def deliver(
    sends: cabc.Sequence[escalation.Send],
    inc: incident.Incident,
    spec: policy.EscalationPolicySpec,
    secret: SecretReader,
    session: aiohttp.ClientSession,
    now: dt.datetime,
) -> list[Result]:
    """Send every step to its channels concurrently; never raises, one Result per (step, channel).

    A channel whose Secret cannot be read fails alone, retryably: the others are sent all the same.
    """
    channels = {c.name: c for c in spec.channels}
    senders: dict[str, notifiers.Sender] = {}
    unread: dict[str, str] = {}
    for name in {c for s in sends for c in s.channels if c in channels}:
        channel = channels[name]
        try:
            value = await secret(channel) if channel.secret_ref is not None else None
        except Exception as error:  # one channel's Secret must not cost the other channels their page
            unread[name] = f"{name}: could not read its Secret: {type(error).__name__}: {str(error)[:200]}"
            continue
        senders[name] = notifiers.sender_for(
            channel, value, session, pagerduty_url=channel.endpoint or notifiers.pagerduty.EVENTS_URL
        )

    async def one(send: escalation.Send) -> list[Result]:
        usable = [senders[c] for c in send.channels if c in senders]
        missing = [
            Result(send.key, c, False, unread.get(c, f"{c}: channel is not in the escalation policy"), c in unread)
            for c in send.channels
            if c not in senders
        ]
        deliveries = await notifiers.send_all(notice(send, inc, now), usable)
        return missing + [Result(send.key, d.channel, d.ok, d.describe(), d.retryable) for d in deliveries]

    results = await asyncio.gather(*(one(s) for s in sends))
    return [r for batch in results for r in batch]

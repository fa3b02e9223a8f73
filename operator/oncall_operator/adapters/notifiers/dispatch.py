"""From the escalation engine's decisions to messages on the wire.

The engine (pure) says "send step K of kind X to channels A and B for these people"; this
module builds the Notice (:func:`~oncall_operator.domain.pages.notice`), reads each channel's
Secret, builds its senders and sends every step to every channel at once. Channels that reach
one person at a time fan out: PagerDuty gets an alert of its own per person paged (their own
dedup key, and their own routing key when they have one), so acknowledging and resolving are
mirrored to each; Twilio texts or calls each person's phone; a SlackBot channel without a
channel of its own DMs each person. It returns one result per (step key, channel), which the
caller writes back onto the Incident's notifications: Delivered, or Failed with the reason.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt

import aiohttp

from oncall_operator.adapters import notifiers
from oncall_operator.api import incident, policy, schedule
from oncall_operator.domain import escalation, notices, pages, people, tenancy, war_room

SecretReader = cabc.Callable[[policy.Channel], cabc.Awaitable[str | None]]
"""A channel's Secret value (None without one); raises :class:`tenancy.Refused` for a channel it must not serve."""
Part = tuple[notices.Notice, notifiers.Sender, str]
"""A notice, the sender that delivers it, and whom it is for (empty: the channel itself)."""
PersonLinks = cabc.Callable[[schedule.Member, str, bool], list[notices.Link]]
"""One recipient's signed answer links (``executor/signing.py``); with a label, only the one named for them;
with True, first the status-update form's."""
ANSWERED = frozenset({notices.NoticeKind.PAGE, notices.NoticeKind.REMINDER})
"""The messages that carry answer links: somebody is asked to act."""
STATUS_UPDATE = "status-update/"
"""The step key of the handbook's status-update reminders: theirs carry the update form's link first."""
SHARED_LINKS_MAX = 5
"""People named by their own acknowledge link in a message that reaches several at once."""


@dataclasses.dataclass(frozen=True)
class Result:
    key: str
    channel: str
    ok: bool
    detail: str
    retryable: bool = False


async def deliver(
    sends: cabc.Sequence[escalation.Send],
    inc: incident.Incident,
    spec: policy.EscalationPolicySpec,
    secret: SecretReader,
    session: aiohttp.ClientSession,
    now: dt.datetime,
    person_links: PersonLinks | None = None,
) -> list[Result]:
    """Send every step to its channels concurrently; never raises, one Result per (step, channel).

    A channel whose Secret cannot be read fails alone, retryably: the others are sent all the same.
    """
    channels = {c.name: c for c in spec.channels}
    values: dict[str, str | None] = {}
    refused: dict[str, Result] = {}
    for name in {c for s in sends for c in s.channels if c in channels}:
        channel = channels[name]
        try:  # the reader also judges where the channel sends (the tenancy rules)
            values[name] = await secret(channel)
        except tenancy.Refused as error:  # never retried: the channel is not allowed to send
            refused[name] = Result("", name, False, f"{name}: {error}")
        except Exception as error:  # one channel's Secret must not cost the other channels their page
            detail = f"{name}: could not read its Secret: {type(error).__name__}: {str(error)[:200]}"
            refused[name] = Result("", name, False, detail, retryable=True)

    async def one(send: escalation.Send) -> list[Result]:
        note = pages.notice(send, inc, spec, now)
        out = []
        for name in send.channels:
            if name not in channels:
                out.append(Result(send.key, name, False, f"{name}: channel is not in the escalation policy"))
                continue
            if name in refused:
                out.append(dataclasses.replace(refused[name], key=send.key))
                continue
            try:
                parts = await _parts(channels[name], values[name], send, note, secret, session)
                parts = [(_with_links(n, person_links), sender, who) for n, sender, who in parts]
            except tenancy.Refused as error:  # e.g. a person's own routing key in a Secret not opted in
                out.append(Result(send.key, name, False, f"{name}: {error}"))
                continue
            out.append(await _send(send.key, name, parts))
        return out

    results = await asyncio.gather(*(one(s) for s in sends))
    return [r for batch in results for r in batch]


async def _parts(
    channel: policy.Channel,
    value: str | None,
    send: escalation.Send,
    note: notices.Notice,
    secret: SecretReader,
    session: aiohttp.ClientSession,
) -> list[Part]:
    def sender(secret_value: str | None) -> notifiers.Sender:
        pd_url = channel.endpoint or notifiers.pagerduty.EVENTS_URL
        return notifiers.sender_for(channel, secret_value, session, pagerduty_url=pd_url, method=send.method)

    kind = channel.type
    if send.kind == "war-room" and kind == policy.ChannelType.SLACK_BOT and value and value.strip().startswith("xox"):
        room = war_room.slack_name(note.name)
        api = channel.endpoint or notifiers.slackbot.API_URL
        return [(note, notifiers.slackbot.WarRoomSender(channel.name, value, session, room=room, url=api), "")]
    per_person = kind in (policy.ChannelType.PAGER_DUTY, policy.ChannelType.TWILIO) or (
        kind == policy.ChannelType.SLACK_BOT
        and (send.method or channel.slack_bot is None or not channel.slack_bot.channel)
    )
    if not per_person or not send.recipients:
        return [(note, sender(value), "")]
    parts: list[Part] = []
    for person in send.recipients:
        mine = dataclasses.replace(note, recipients=(person,))
        key = value
        if kind == policy.ChannelType.PAGER_DUTY:
            dedup = notices.person_dedup_key(note.namespace, note.name, people.person_key(person.name))
            mine = dataclasses.replace(mine, dedup_key=dedup)
            key = await _own_routing_key(channel, person, secret) or value
        parts.append((mine, sender(key), person.name))
    return parts


def _with_links(note: notices.Notice, person_links: PersonLinks | None) -> notices.Notice:
    """The notice with its recipient's answer links first (each person's acknowledge link when several)."""
    if person_links is None or note.kind not in ANSWERED or not note.recipients:
        return note
    if len(note.recipients) == 1:
        extra = person_links(note.recipients[0], "", note.step.startswith(STATUS_UPDATE))
    else:
        extra = [link for p in note.recipients[:SHARED_LINKS_MAX] for link in person_links(p, p.name, False)]
    return dataclasses.replace(note, links=(*extra, *note.links))


async def _own_routing_key(channel: policy.Channel, person: schedule.Member, secret: SecretReader) -> str | None:
    ref = person.pager_duty_routing_key
    if ref is None:
        return None
    return await secret(channel.model_copy(update={"secret_ref": ref}))


async def _send(key: str, channel: str, parts: list[Part]) -> Result:
    """All parts at once; the channel's result is Delivered only when every person's part was."""
    deliveries = await asyncio.gather(*(sender.send(n) for n, sender, _ in parts))
    if len(parts) == 1 and not parts[0][2]:
        d = deliveries[0]
        return Result(key, channel, d.ok, d.describe(), d.retryable)
    details = [f"{who}: {d.describe()}" for (_, _, who), d in zip(parts, deliveries, strict=True)]
    ok = all(d.ok for d in deliveries)
    return Result(key, channel, ok, "; ".join(details), not ok and all(d.ok or d.retryable for d in deliveries))

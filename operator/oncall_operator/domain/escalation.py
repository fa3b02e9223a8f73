"""The escalation engine: given a policy, an Incident and ``now``, what must be sent now.

It is a reconciler, not an event log: every decision is derived from the Incident's status
(phase, when escalation started, which steps already have a notification recorded) and the
clock value passed in. A restarted or newly elected operator therefore resumes exactly where
the last one stopped: a step whose key is recorded is never sent again, a step that came due
while nobody was running is sent on the next tick. Each step has a key (``page/L2/loop0@<start>``)
and the caller records a Pending notification under that key *before* sending.

Handbook semantics: levels fire at ``after`` since the start unless the Incident is already
acknowledged (or, for ``unless: Resolved`` levels, resolved); an unacknowledged page is
repeated once when ``ackTimeout`` passes before the next level is due (not on levels that
send status updates, which remind anyway); a level with ``statusUpdateEvery`` reminds at that
cadence until resolved (after an outage, one catch-up reminder, not a burst); the whole chain
repeats ``repeat.times``; ``Notify`` severities send once (and remind once when the response
time passes unacknowledged); acknowledgement and resolution are told to the channels paged.

People are reached by their own notification rules too (:mod:`~oncall_operator.domain.people`):
each rule step of each person a level pages is a step of its own, keyed
``page/L2/loop0/<person>/r1``, claimed like any other, so it is sent exactly once, and an
acknowledgement before its time stops it (for ``unless: Resolved`` levels, the resolution).
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import zoneinfo

from oncall_operator.api import durations, incident, policy, schedule
from oncall_operator.domain import bounds, business_days, delivery, lifecycle, people, war_room

Phase = incident.Phase
PAGE_KINDS = ("page", "reminder", "status-update", "notify")
NOT_SENT = ("Failed", "Held", "Summarized")
"""Results of a page nobody got (failed, or held by the page budget): no acknowledgement or resolution follows it."""
NOBODY = "nobody on call"
USER_MAX = 256
"""A notification's ``user`` (the names it was claimed for) is cut at this length (the schema's bound)."""


Recipient = schedule.Member
"""Somebody to tell, with the addresses the schedule's members list gives."""


Resolver = cabc.Callable[[policy.Target, dt.datetime], list[Recipient]]
"""Who a target means at an instant (a schedule role's on-call people, a user, a team)."""


@dataclasses.dataclass(frozen=True)
class Send:
    """One step's message, to be delivered to each of ``channels``."""

    key: str
    kind: str
    level: int
    loop: int
    channels: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    text: str
    method: str = ""
    """A person's contact method (``SMS``, ``Voice``...) for their own rule's step; empty: the channel's way."""


@dataclasses.dataclass(frozen=True)
class Decision:
    status: incident.IncidentStatus
    sends: tuple[Send, ...]
    wake_at: dt.datetime | None


def _rule(spec: policy.EscalationPolicySpec, severity: str) -> policy.SeverityRule:
    for rule in spec.severities:
        if rule.severity == severity:
            return rule
    return policy.SeverityRule(severity=severity, response=policy.Response.PAGE, channels=[spec.channels[0].name])


def _matches(route: policy.Route, labels: cabc.Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in route.match.items())


class _Run:
    """One decision in progress: the status being updated and what to send."""

    def __init__(
        self,
        spec: policy.EscalationPolicySpec,
        inc: incident.Incident,
        now: dt.datetime,
        resolve: Resolver,
        who: delivery.Claimant = delivery.ANONYMOUS,
    ):
        assert inc.status is not None
        self.spec, self.inc, self.now, self.resolve, self.who = spec, inc, now, resolve, who
        self.status = incident.IncidentStatus.model_validate(inc.status.model_dump())  # 15x faster than a deepcopy
        self.esc = self.status.escalation
        if self.esc.started_at is None:
            self.esc.started_at = self.status.first_seen or now
        self.start: dt.datetime = self.esc.started_at
        self.epoch = f"@{int(self.start.timestamp())}"
        self.sent = {n.key for n in self.esc.notifications}
        self.sends: list[Send] = []
        self.future: list[dt.datetime] = []

    def key(self, step: str) -> str:
        return step + self.epoch

    def recipients(
        self, targets: cabc.Sequence[policy.Target], first_level: bool, at: dt.datetime | None = None
    ) -> tuple[Recipient, ...]:
        when = at or self.now
        if first_level:
            labels = self.inc.spec.source.labels
            for route in self.spec.routes:
                if _matches(route, labels) and (routed := self.resolve(route.target, when)):
                    return tuple(routed)
        found: dict[str, Recipient] = {}
        for target in targets:
            for r in self.resolve(target, when):
                found.setdefault(r.name, r)
        return tuple(found.values())

    def send(
        self,
        step: str,
        kind: str,
        level: int,
        loop: int,
        channels: cabc.Sequence[str],
        recipients: tuple[Recipient, ...],
        text: str,
        method: str = "",
    ) -> None:
        key = self.key(step)
        if key in self.sent:
            return
        self.sent.add(key)
        self.sends.append(Send(key, kind, level, loop, tuple(channels), recipients, text, method))
        who = ", ".join(r.name for r in recipients) or NOBODY
        for channel in channels:
            note = incident.Notification(
                key=key,
                at=self.now,
                level=level,
                loop=loop,
                user=who[:USER_MAX],
                channel=channel,
                kind=kind,
                result="",
                text=text[:1024],
            )
            delivery.claim(note, self.now, self.who)
            self.esc.notifications.append(note)
        via = f"{method} through {channels[0]}" if method else ", ".join(channels)
        lifecycle.add(self.status, self.now, kind.title().replace("-", ""), f"{text} -> {who} via {via}")
        if kind in ("page", "notify") and recipients and not method:
            self.status.on_call = who[:256]

    def due(self, at: dt.datetime) -> bool:
        if at <= self.now:
            return True
        self.future.append(at)
        return False


def decide(
    spec: policy.EscalationPolicySpec,
    inc: incident.Incident,
    now: dt.datetime,
    resolve: Resolver,
    who: delivery.Claimant = delivery.ANONYMOUS,
) -> Decision:
    """What to send at ``now`` and the status that records it; ``wake_at`` is the next due step.

    ``who`` claims what is due; Pending steps nobody sends any more are sent again (:mod:`.delivery`).
    """
    if inc.status is None or inc.status.phase is None:
        raise ValueError("an Incident is escalated only after it has been opened")
    run = _Run(spec, inc, now, resolve, who)
    phase = run.status.phase
    paged = [n for n in run.esc.notifications if n.kind in PAGE_KINDS and n.result not in NOT_SENT]
    channels = _told_channels(spec, paged)
    if phase == Phase.RESOLVED:
        if channels:
            run.send("resolve", "resolve", run.esc.level, run.esc.loop, channels, _told(run, paged), "Resolved.")
        run.esc.next_step_at = run.esc.next_reminder_at = None
        return _finish(run, None)
    acked = phase in (Phase.ACKNOWLEDGED, Phase.MITIGATED)
    if phase == Phase.ACKNOWLEDGED and channels and run.key("acknowledge") not in run.sent:
        by = run.status.acknowledged_by or "someone"
        told = _told(run, paged)
        run.send("acknowledge", "acknowledge", run.esc.level, run.esc.loop, channels, told, f"Acknowledged by {by}.")
    rule = _rule(spec, inc.spec.severity.value)
    # the automation stopped and says a person must act: page, even where the severity only notifies
    if rule.response == policy.Response.NOTIFY and not lifecycle.human_needed(run.status):
        _notify_once(run, rule, acked)
    else:
        _escalate(run, acked)
    wake = min(run.future, default=None)
    run.esc.next_step_at = wake
    return _finish(run, wake)


def retry_window(spec: policy.EscalationPolicySpec, severity: str) -> dt.timedelta:
    """How long a step's failed sends are retried: the severity's response time, else the ack timeout."""
    rule = _rule(spec, severity)
    return max(durations.parse(rule.response_time or spec.ack_timeout), dt.timedelta(minutes=1))


def _person(run: _Run, name: str) -> Recipient:
    """Somebody by name, with the addresses the schedules' members give."""
    return next(iter(run.resolve(policy.Target(user=name), run.now)), None) or Recipient(name=name)


def _claimed_for(run: _Run, n: incident.Notification) -> tuple[Recipient, ...]:
    """Who a re-sent step goes to: the people its claim named, though the rota changed since.

    A re-send is the same page under the same delivery id (receivers and PagerDuty drop it when
    the first send got through), so it must reach the same people: sent to whoever is on call now,
    the new person's copy would be dropped as a duplicate and the old person's page lost. Whoever
    is on call now gets the next step claimed (the next level, a reminder), resolved at its time.
    Addresses come from the targets resolved at the claim's instant (a team's email too).
    """
    lv = run.spec.levels[n.level - 1] if n.kind in PAGE_KINDS and 1 <= n.level <= len(run.spec.levels) else None
    then = {r.name: r for r in run.recipients(lv.targets, first_level=n.level == 1, at=n.at)} if lv else {}
    names = [x for x in n.user.split(", ") if x] if n.user != NOBODY else []
    if lv and (not names or len(n.user) >= USER_MAX):  # nobody recorded, or the list was cut: the claim's rota
        return tuple(then.values())
    return tuple(then.get(x) or _person(run, x) for x in names)


def _finish(run: _Run, wake: dt.datetime | None) -> Decision:
    """Send again what nobody sends any more, give up what is past its window, compact, and decide."""
    esc = run.esc
    again, given_up = delivery.due_again(
        esc.notifications, run.now, run.who, retry_window(run.spec, run.inc.spec.severity.value)
    )
    for key, notes in again.items():
        n = notes[0]
        channels = tuple(x.channel for x in notes)
        if people.is_rule_step(key):  # a person's own rule: that person again, by the same contact method
            person = (_person(run, n.user),)
            method = people.method_of(key, person[0])
            run.sends.append(Send(key, n.kind, n.level, n.loop, channels, person, n.text or key, method))
            continue
        run.sends.append(Send(key, n.kind, n.level, n.loop, channels, _claimed_for(run, n), n.text or key))
    for n in given_up:
        lifecycle.add(run.status, run.now, "NotificationFailed", n.message)
    esc.notifications = bounds.compact_notifications(esc.notifications, bounds.engine_needs(run.status))
    retry = delivery.next_retry(esc.notifications)
    wake = min((t for t in (wake, retry) if t is not None), default=None)
    if run.status.phase == Phase.RESOLVED:
        esc.closed = not delivery.pending(esc.notifications)
    return Decision(run.status, tuple(run.sends), wake)


def _told_channels(spec: policy.EscalationPolicySpec, paged: list[incident.Notification]) -> tuple[str, ...]:
    """The channels an acknowledgement or resolution goes to: every one paged, except a person's SMS/voice/DM.

    A person's PagerDuty rule is mirrored (their PagerDuty alert is acknowledged and resolved too).
    """
    pagerduty = {c.name for c in spec.channels if c.type == policy.ChannelType.PAGER_DUTY}
    return tuple(dict.fromkeys(n.channel for n in paged if not people.is_rule_step(n.key) or n.channel in pagerduty))


def _told(run: _Run, paged: list[incident.Notification]) -> tuple[Recipient, ...]:
    """Everybody paged so far (each with their addresses again), so each PagerDuty alert of theirs is mirrored."""
    names = dict.fromkeys(name for n in paged for name in n.user.split(", ") if name and name != "nobody on call")
    found: dict[str, Recipient] = {}
    for name in names:
        for r in run.resolve(policy.Target(user=name), run.now) or [Recipient(name=name)]:
            found.setdefault(r.name, r)
    return tuple(found.values())


def _notify_once(run: _Run, rule: policy.SeverityRule, acked: bool) -> None:
    first = run.spec.levels[0]
    text = f"Respond within {rule.response_time}." if rule.response_time else "Respond by the next business day."
    if rule.next_business_day:
        hours = run.spec.business_hours
        opening, closing = business_days.next_business_day(run.start, hours)
        if not run.due(opening):
            return  # delivered when the next business day starts (next_step_at says when)
        zone = zoneinfo.ZoneInfo((hours or business_days.DEFAULT_HOURS).time_zone)
        text = f"Respond by {closing.astimezone(zone).strftime('%a %Y-%m-%d %H:%M %Z')}."
    who = run.recipients(first.targets, first_level=True)
    run.send("notify", "notify", 1, 0, rule.channels, who, text)
    run.esc.level = max(run.esc.level, 1)
    if rule.response_time and not acked:
        at = run.start + durations.parse(rule.response_time)
        if run.due(at):
            run.send("reminder/response", "reminder", 1, 0, rule.channels, who, "Response overdue.")


def _repeat_gap(spec: policy.EscalationPolicySpec) -> dt.timedelta:
    if spec.repeat.after:
        return durations.parse(spec.repeat.after)
    afters = [durations.parse(level.after) for level in spec.levels]
    gap = afters[-1] - afters[-2] if len(afters) > 1 else afters[-1]
    return max(gap, dt.timedelta(minutes=1))


def _escalate(run: _Run, acked: bool) -> None:
    spec = run.spec
    ack_timeout = durations.parse(spec.ack_timeout)
    loop_start = run.start
    for loop in range(spec.repeat.times + 1):
        fired: list[tuple[int, dt.datetime]] = []
        for n, level in enumerate(spec.levels, start=1):
            at = loop_start + durations.parse(level.after)
            skip = level.unless == policy.Unless.ACKNOWLEDGED and acked
            key = f"page/L{n}/loop{loop}"
            if run.key(key) in run.sent:
                fired.append((n, at))
                continue
            if skip or not run.due(at):
                continue
            who = run.recipients(level.targets, first_level=(n == 1), at=at)
            channels = level.channels or _rule(spec, run.inc.spec.severity.value).channels
            room = war_room.place(spec, run.inc) if level.war_room else ""
            bot = war_room.bot_channel(spec) if level.war_room else None
            if room and not run.status.war_room:
                run.status.war_room = room
                if not bot:  # the bot's opening step says it in the timeline
                    run.status.timeline.append(incident.TimelineEntry(at=run.now, type="WarRoom", message=room))
            said = f" War room: {run.status.war_room}." if run.status.war_room else ""
            run.send(key, "page", n, loop, channels, who, f"Level {n} ({level.name}).{said}")
            run.esc.level, run.esc.loop = n, loop
            fired.append((n, at))
            if bot:
                paged = [x for x in run.esc.notifications if x.kind in PAGE_KINDS and x.result not in NOT_SENT]
                run.send(
                    f"war-room/L{n}/loop{loop}", "war-room", n, loop, (bot,), _told(run, paged), f"War room {room}."
                )
        for n, at in fired:
            level = spec.levels[n - 1]
            if not (acked and level.unless == policy.Unless.ACKNOWLEDGED):
                _rule_steps(run, n, loop, at, run.recipients(level.targets, first_level=(n == 1), at=at))
        _reminders(run, fired, loop, loop_start, acked, ack_timeout)
        if acked or len(fired) < len(spec.levels) or loop == spec.repeat.times:
            return  # the last loop has no next one to wake for (a wake there found nothing to send)
        loop_start = loop_start + durations.parse(spec.levels[-1].after) + _repeat_gap(spec)
        if not run.due(loop_start):
            return


def _rule_steps(run: _Run, n: int, loop: int, at: dt.datetime, who: tuple[Recipient, ...]) -> None:
    """Each paged person's own notification rules, from the level's start, each step keyed and sent once."""
    for step in people.rule_steps(run.spec, who, at):
        if len(run.esc.notifications) >= people.RULE_STEPS_BUDGET:
            return  # the status stays bounded: the level's channels still page, acks still go out
        if run.due(step.at):
            run.send(
                f"page/L{n}/loop{loop}/{step.person_key}/r{step.index}",
                "page",
                n,
                loop,
                (step.channel,),
                (step.person,),
                f"Level {n} ({run.spec.levels[n - 1].name}), {step.method.value} to {step.person.name}.",
                method=step.method.value,
            )


def _reminders(
    run: _Run,
    fired: list[tuple[int, dt.datetime]],
    loop: int,
    loop_start: dt.datetime,
    acked: bool,
    ack_timeout: dt.timedelta,
) -> None:
    if not fired:
        return
    n, at = fired[-1]
    level = run.spec.levels[n - 1]
    channels = level.channels or _rule(run.spec, run.inc.spec.severity.value).channels
    who = run.recipients(level.targets, first_level=(n == 1))
    following = [loop_start + durations.parse(lv.after) for lv in run.spec.levels[n:]]
    overdue = at + ack_timeout
    reminds_anyway = level.status_update_every is not None  # its status updates nag already
    if not acked and not reminds_anyway and (not following or overdue < following[0]) and run.due(overdue):
        run.send(f"reminder/L{n}/loop{loop}", "reminder", n, loop, channels, who, "Acknowledgement overdue.")
    if level.status_update_every:
        every = durations.parse(level.status_update_every)
        count = int((run.now - at) / every)
        if count >= 1:
            run.send(
                f"status-update/L{n}/loop{loop}/{count}",
                "status-update",
                n,
                loop,
                channels,
                who,
                f"Status update #{count} due.",
            )
        nxt = at + (count + 1) * every
        run.esc.next_reminder_at = nxt
        run.due(nxt)

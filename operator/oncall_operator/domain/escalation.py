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
"""

import collections.abc as cabc
import dataclasses
import datetime as dt

from oncall_operator.api import durations, incident, policy, schedule
from oncall_operator.domain import bounds, delivery, lifecycle

Phase = incident.Phase
PAGE_KINDS = ("page", "reminder", "status-update", "notify")


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

    def recipients(self, targets: cabc.Sequence[policy.Target], first_level: bool) -> tuple[Recipient, ...]:
        if first_level:
            labels = self.inc.spec.source.labels
            for route in self.spec.routes:
                if _matches(route, labels) and (routed := self.resolve(route.target, self.now)):
                    return tuple(routed)
        people: dict[str, Recipient] = {}
        for target in targets:
            for r in self.resolve(target, self.now):
                people.setdefault(r.name, r)
        return tuple(people.values())

    def send(
        self,
        step: str,
        kind: str,
        level: int,
        loop: int,
        channels: cabc.Sequence[str],
        recipients: tuple[Recipient, ...],
        text: str,
    ) -> None:
        key = self.key(step)
        if key in self.sent:
            return
        self.sent.add(key)
        self.sends.append(Send(key, kind, level, loop, tuple(channels), recipients, text))
        who = ", ".join(r.name for r in recipients) or "nobody on call"
        for channel in channels:
            note = incident.Notification(
                key=key,
                at=self.now,
                level=level,
                loop=loop,
                user=who[:256],
                channel=channel,
                kind=kind,
                result="",
                text=text[:1024],
            )
            delivery.claim(note, self.now, self.who)
            self.esc.notifications.append(note)
        lifecycle.add(
            self.status, self.now, kind.title().replace("-", ""), f"{text} -> {who} via {', '.join(channels)}"
        )
        if kind in ("page", "notify") and recipients:
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
    title = f"[{inc.spec.severity.value}] {inc.spec.title}"
    paged = [n for n in run.esc.notifications if n.kind in PAGE_KINDS and n.result != "Failed"]
    channels = tuple(dict.fromkeys(n.channel for n in paged))
    last = paged[-1] if paged else None
    told = tuple(Recipient(name=n) for n in (last.user.split(", ") if last else []))
    if phase == Phase.RESOLVED:
        if channels:
            run.send("resolve", "resolve", run.esc.level, run.esc.loop, channels, told, f"Resolved: {title}")
        run.esc.next_step_at = run.esc.next_reminder_at = None
        return _finish(run, None)
    acked = phase in (Phase.ACKNOWLEDGED, Phase.MITIGATED)
    if phase == Phase.ACKNOWLEDGED and channels:
        by = run.status.acknowledged_by or "someone"
        run.send(
            "acknowledge", "acknowledge", run.esc.level, run.esc.loop, channels, told, f"Acknowledged by {by}: {title}"
        )
    rule = _rule(spec, inc.spec.severity.value)
    if rule.response == policy.Response.NOTIFY:
        _notify_once(run, rule, title, acked)
    else:
        _escalate(run, title, acked)
    wake = min(run.future, default=None)
    run.esc.next_step_at = wake
    return _finish(run, wake)


def retry_window(spec: policy.EscalationPolicySpec, severity: str) -> dt.timedelta:
    """How long a step's failed sends are retried: the severity's response time, else the ack timeout."""
    rule = _rule(spec, severity)
    return max(durations.parse(rule.response_time or spec.ack_timeout), dt.timedelta(minutes=1))


def _finish(run: _Run, wake: dt.datetime | None) -> Decision:
    """Send again what nobody sends any more, give up what is past its window, compact, and decide."""
    esc = run.esc
    again, given_up = delivery.due_again(
        esc.notifications, run.now, run.who, retry_window(run.spec, run.inc.spec.severity.value)
    )
    for key, notes in again.items():
        n = notes[0]
        lv = run.spec.levels[n.level - 1] if n.kind in PAGE_KINDS and 1 <= n.level <= len(run.spec.levels) else None
        who = (
            run.recipients(lv.targets, first_level=n.level == 1)
            if lv
            else tuple(Recipient(name=x) for x in n.user.split(", ") if x)
        )
        channels = tuple(x.channel for x in notes)
        run.sends.append(Send(key, n.kind, n.level, n.loop, channels, who, n.text or key))
    for n in given_up:
        lifecycle.add(run.status, run.now, "NotificationFailed", n.message)
    esc.notifications = bounds.compact_notifications(esc.notifications, bounds.engine_needs(run.status))
    retry = delivery.next_retry(esc.notifications)
    wake = min((t for t in (wake, retry) if t is not None), default=None)
    if run.status.phase == Phase.RESOLVED:
        esc.closed = not delivery.pending(esc.notifications)
    return Decision(run.status, tuple(run.sends), wake)


def _notify_once(run: _Run, rule: policy.SeverityRule, title: str, acked: bool) -> None:
    first = run.spec.levels[0]
    who = run.recipients(first.targets, first_level=True)
    run.send(
        "notify",
        "notify",
        1,
        0,
        rule.channels,
        who,
        f"{title} (respond within {rule.response_time or 'next business day'})",
    )
    run.esc.level = max(run.esc.level, 1)
    if rule.response_time and not acked:
        at = run.start + durations.parse(rule.response_time)
        if run.due(at):
            run.send("reminder/response", "reminder", 1, 0, rule.channels, who, f"Response overdue: {title}")


def _repeat_gap(spec: policy.EscalationPolicySpec) -> dt.timedelta:
    if spec.repeat.after:
        return durations.parse(spec.repeat.after)
    afters = [durations.parse(level.after) for level in spec.levels]
    gap = afters[-1] - afters[-2] if len(afters) > 1 else afters[-1]
    return max(gap, dt.timedelta(minutes=1))


def _escalate(run: _Run, title: str, acked: bool) -> None:
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
            who = run.recipients(level.targets, first_level=(n == 1))
            channels = level.channels or _rule(spec, run.inc.spec.severity.value).channels
            room = " War room opened." if level.war_room else ""
            run.send(key, "page", n, loop, channels, who, f"Level {n} ({level.name}): {title}.{room}")
            run.esc.level, run.esc.loop = n, loop
            fired.append((n, at))
        _reminders(run, fired, loop, loop_start, title, acked, ack_timeout)
        if acked or len(fired) < len(spec.levels):
            return
        loop_start = loop_start + durations.parse(spec.levels[-1].after) + _repeat_gap(spec)
        if not run.due(loop_start):
            return


def _reminders(
    run: _Run,
    fired: list[tuple[int, dt.datetime]],
    loop: int,
    loop_start: dt.datetime,
    title: str,
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
        run.send(f"reminder/L{n}/loop{loop}", "reminder", n, loop, channels, who, f"Acknowledgement overdue: {title}")
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
                f"Status update #{count} due: {title}",
            )
        nxt = at + (count + 1) * every
        run.esc.next_reminder_at = nxt
        run.due(nxt)

"""What to tell people about an Incident, and how each channel wants to hear it.

A :class:`Notice` is one message about one Incident (a page, a reminder, an acknowledgement,
a resolution, or a runbook's/team's notification). The renderers turn it into exactly the
payload each channel documents: a Slack incoming-webhook message, a PagerDuty Events API v2
event, an email, and this project's own versioned webhook JSON. They are pure functions of
the Notice (no clock, no I/O), so the payloads are tested with tables and the adapters in
``adapters/notifiers`` only move bytes.

A Notice about one Incident carries its ``dedup_key`` (``oncall.dev/<namespace>/<name>``); on
PagerDuty each person paged gets an alert of their own (:func:`person_dedup_key`), and
reminders, acknowledgements and resolutions fold into it. The SMS and voice renderers live in
:mod:`~oncall_operator.domain.phone`; :mod:`~oncall_operator.domain.pages` builds a Notice from
an Incident.

The webhook body, version "1" (keys are camelCase, absent values are omitted)::

    {
      "version": "1",
      "id": "<32 hex chars: stable per notice, identical across retries; use it to drop duplicates>",
      "kind": "page" | "reminder" | "acknowledge" | "resolve" | "notify",
      "timestamp": "<RFC 3339>",
      "dedupKey": "oncall.dev/<namespace>/<name>",
      "incident": {"namespace", "name", "title", "severity": "critical" | "warning" | "info",
                   "summary"?, "target"?, "category"?},
      "level": <int, 0 when not escalating>,
      "actor"?: "<who acknowledged/resolved/sent it>",
      "recipients": [{"name", "email"?, "slack"?, "phone"?}],
      "links": [{"text", "url"}],
      "description"?: "<what the alert says>",
      "checklist"?: ["[x] <runbook step>", ...], "actions"?: ["<action>: <result>", ...],
      "paged"?: ["<person> (level <n>)", ...],
      "details": {"<key>": "<value>"}
    }
"""

import dataclasses
import datetime as dt
import email.message
import email.policy
import email.utils
import enum
import hashlib
import re
import types
from collections.abc import Mapping, Sequence
from typing import Any

from oncall_operator.api import base, schedule

WEBHOOK_VERSION = "1"
DEDUP_PREFIX = "oncall.dev"
PAGERDUTY_DEDUP_MAX = 255
PAGERDUTY_SUMMARY_MAX = 1024
SLACK_TEXT_MAX = 3000
"""Slack's limit for a section block's text; the fallback ``text`` is kept to the same length."""
SLACK_CONTEXT_MAX = 10
SLACK_BLOCKS_MAX = 50
SLACK_ACTION_PREFIX = "oncall-"
"""The ``action_id`` prefix of the answer buttons (:mod:`.slack_answers` takes the clicks)."""
_SLACK_BUTTONS = (("Acknowledge", "ack", "primary"), ("Resolve", "resolve", ""))
LIST_MAX = 20
"""Checklist items, actions and people listed in one message; the rest is counted, not shown."""
CLIENT = "oncall-operator"

Link = tuple[str, str]
"""(text, url)"""


class NoticeKind(enum.StrEnum):
    PAGE = "page"
    REMINDER = "reminder"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    NOTIFY = "notify"
    """A runbook's notify action or a message to a team: information, nobody is paged."""


PAGERDUTY_ACTION: Mapping[NoticeKind, str] = types.MappingProxyType(
    {
        NoticeKind.PAGE: "trigger",
        # PagerDuty dedups on dedup_key: a reminder is a new trigger log entry on the same alert.
        NoticeKind.REMINDER: "trigger",
        NoticeKind.NOTIFY: "trigger",
        NoticeKind.ACKNOWLEDGE: "acknowledge",
        NoticeKind.RESOLVE: "resolve",
    }
)

PAGERDUTY_SEVERITY: Mapping[base.Severity, str] = types.MappingProxyType(
    {
        base.Severity.CRITICAL: "critical",
        base.Severity.WARNING: "warning",
        base.Severity.INFO: "info",
    }
)

_LABEL: Mapping[NoticeKind, str] = types.MappingProxyType(
    {
        NoticeKind.PAGE: "Incident",
        NoticeKind.REMINDER: "Reminder",
        NoticeKind.ACKNOWLEDGE: "Acknowledged",
        NoticeKind.RESOLVE: "Resolved",
        NoticeKind.NOTIFY: "Notice",
    }
)

_SLACK_EMOJI: Mapping[NoticeKind, str] = types.MappingProxyType(
    {
        NoticeKind.PAGE: ":rotating_light:",
        NoticeKind.REMINDER: ":alarm_clock:",
        NoticeKind.ACKNOWLEDGE: ":eyes:",
        NoticeKind.RESOLVE: ":white_check_mark:",
        NoticeKind.NOTIFY: ":information_source:",
    }
)

_EMAIL_POLICY = email.policy.default.clone(max_line_length=998, cte_type="7bit")
"""Lines up to RFC 5322's hard limit (the default 78 folds a long subject right after ``Subject:``,
which some readers show with a leading space); non-ASCII text is encoded, so any server takes it."""
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,63}$")
_WHITESPACE = re.compile(r"\s+")


def dedup_key_for(namespace: str, name: str) -> str:
    """The Incident's identity at every channel: stable, and at most PagerDuty's 255 characters."""
    key = f"{DEDUP_PREFIX}/{namespace}/{name}"
    if len(key) <= PAGERDUTY_DEDUP_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: PAGERDUTY_DEDUP_MAX - len(digest) - 1]}~{digest}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Notice:
    """One thing to tell people about one Incident. ``timestamp`` must be timezone-aware."""

    kind: NoticeKind
    namespace: str
    name: str
    title: str
    severity: base.Severity
    timestamp: dt.datetime
    summary: str = ""
    level: int = 0
    recipients: Sequence[schedule.Member] = ()
    target: str = ""
    """The affected workload, e.g. ``Deployment shop/checkout``."""
    links: Sequence[Link] = ()
    details: Mapping[str, str] = dataclasses.field(default_factory=dict)
    actor: str = ""
    """Who acknowledged, resolved, or sent it (empty for the operator's own pages)."""
    category: str = ""
    """What kind of problem: the alert name or the trigger reason (PagerDuty ``class``)."""
    dedup_key: str = ""
    """Defaults to :func:`dedup_key_for` (namespace, name)."""
    description: str = ""
    """What the alert says (its ``description`` annotation) or the Incident's description."""
    checklist: Sequence[str] = ()
    """The runbook's steps, ``[x]`` when done."""
    actions: Sequence[str] = ()
    """Actions already taken and their result, e.g. ``rollback: Applied (revision 7)``."""
    paged: Sequence[str] = ()
    """Everybody paged so far and at which level, e.g. ``Bob (level 2)``."""
    step: str = ""
    """The escalation step's key, when there is one: the delivery id then depends on it alone, so a
    step sent again after a restart carries the id its first send had."""

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
            raise ValueError("Notice.timestamp must be timezone-aware")
        if self.level < 0:
            raise ValueError("Notice.level must be >= 0")
        key = self.dedup_key or dedup_key_for(self.namespace, self.name)
        if len(key) > PAGERDUTY_DEDUP_MAX:
            raise ValueError(f"Notice.dedup_key is longer than {PAGERDUTY_DEDUP_MAX} characters")
        object.__setattr__(self, "kind", NoticeKind(self.kind))
        object.__setattr__(self, "severity", base.Severity(self.severity))
        object.__setattr__(self, "dedup_key", key)
        object.__setattr__(self, "recipients", tuple(self.recipients))
        for name in ("checklist", "actions", "paged"):
            object.__setattr__(self, name, tuple(str(x) for x in getattr(self, name)))
        object.__setattr__(self, "links", tuple((str(t), str(u)) for t, u in self.links))
        object.__setattr__(self, "details", types.MappingProxyType({str(k): str(v) for k, v in self.details.items()}))

    @property
    def incident(self) -> str:
        return f"{self.namespace}/{self.name}"


def delivery_id(notice: Notice) -> str:
    """Stable per notice (same across retries), different per kind, level and time: for receivers to dedup."""
    raw = "\x00".join(
        (notice.dedup_key, "step", notice.step)
        if notice.step
        else (notice.dedup_key, notice.kind.value, str(notice.level), notice.timestamp.astimezone(dt.UTC).isoformat())
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def headline(notice: Notice) -> str:
    """One line for a subject, a fallback text or a log: ``Acknowledged by ann: [CRITICAL] title (ns/name)``."""
    return f"{_label(notice)}: [{notice.severity.value.upper()}] {_one_line(notice.title)} ({notice.incident})"


def person_dedup_key(namespace: str, name: str, person_key: str) -> str:
    """One person's own PagerDuty alert for an Incident: ``oncall.dev/<ns>/<name>/<person>``, at most 255."""
    return dedup_key_for(namespace, f"{name}/{person_key}")


def bounded(items: Sequence[str], limit: int = LIST_MAX) -> list[str]:
    """At most ``limit`` items, the cut said in a last line."""
    if len(items) <= limit:
        return list(items)
    return [*items[: limit - 1], f"\u2026 and {len(items) - limit + 1} more"]


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters; a cut is marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- Slack (incoming webhook) -------------------------------------------------------------


def slack_payload(notice: Notice) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` (the notification fallback) and Block Kit ``blocks``.

    People with a Slack member ID are mentioned as ``<@ID>`` (so Slack notifies them), others by name.
    """
    sev = notice.severity.value.upper()
    head = f"{_label(notice)}: [{sev}] {_one_line(notice.title)}"
    lines = [f"{_SLACK_EMOJI[notice.kind]} *{_slack_escape(head)}*"]
    if notice.summary:
        lines.append(_slack_escape(notice.summary))
    if notice.target:
        lines.append(f"*Target:* {_slack_escape(notice.target)}")
    mentions = [_slack_mention(m) for m in notice.recipients]
    if mentions:
        who = "Paged" if notice.kind in (NoticeKind.PAGE, NoticeKind.REMINDER) else "To"
        lines.append(f"*{who}:* {', '.join(mentions)}")
    if notice.links:
        lines.append(" \u00b7 ".join(_slack_link(text, url) for text, url in notice.links))
    section = truncate("\n".join(lines), SLACK_TEXT_MAX)
    more = [_slack_escape(notice.description)] if notice.description else []
    for head, items in _lists(notice):
        if items:
            more.append(f"*{head}:*\n" + "\n".join(f"\u2022 {_slack_escape(_one_line(i))}" for i in bounded(items)))

    epoch = int(notice.timestamp.timestamp())
    iso = notice.timestamp.isoformat()
    context = [f"`{_slack_escape(notice.incident)}`"]
    if notice.level:
        context.append(f"level {notice.level}")
    if notice.category:
        context.append(_slack_escape(notice.category))
    context.append(f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{iso}>")
    context.append(f"dedup `{_slack_escape(notice.dedup_key)}`")

    fallback = _slack_escape(headline(notice))
    if mentions:
        fallback += " " + " ".join(mentions)
    return {
        "text": truncate(fallback, SLACK_TEXT_MAX),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            *({"type": "section", "text": {"type": "mrkdwn", "text": truncate(m, SLACK_TEXT_MAX)}} for m in more),
            *_slack_buttons(notice.links),
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": truncate(t, SLACK_TEXT_MAX)} for t in context][
                    :SLACK_CONTEXT_MAX
                ],
            },
        ],
    }


def _slack_buttons(links: Sequence[Link]) -> list[dict[str, Any]]:
    """An ``actions`` block for a page's answer links (the first Acknowledge and Resolve); its values are
    the signed answer paths, so a click names its Incident as only the operator could."""
    elements = []
    for label, action, style in _SLACK_BUTTONS:
        url = next((u for t, u in links if t.startswith(label) and "/answer/" in u), None)
        if url is None:
            continue
        value = url.split("/answer/", 1)[1]
        if len(value) > 2000:  # Slack's limit for a button's value
            continue
        button: dict[str, Any] = {
            "type": "button",
            "action_id": SLACK_ACTION_PREFIX + action,
            "text": {"type": "plain_text", "text": label},
            "value": value,
        }
        if style:
            button["style"] = style
        elements.append(button)
    return [{"type": "actions", "block_id": "oncall-answer", "elements": elements}] if elements else []


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn control characters; everything else is shown as written.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_mention(member: schedule.Member) -> str:
    if member.slack and _SLACK_ID.match(member.slack):
        return f"<@{member.slack}>"
    return _slack_escape(member.name)


def _slack_link(text: str, url: str) -> str:
    safe_url = re.sub(r"[<>|\s]", "", url)
    safe_text = _slack_escape(_one_line(text)).replace("|", "\u00a6")
    return f"<{safe_url}|{safe_text}>"


# --- PagerDuty (Events API v2) ------------------------------------------------------------


def pagerduty_event(notice: Notice, routing_key: str) -> dict[str, Any]:
    """An Events API v2 event: trigger (page, reminder, notify), acknowledge or resolve, by ``dedup_key``."""
    action = PAGERDUTY_ACTION[notice.kind]
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": notice.dedup_key}
    if action != "trigger":
        return event
    summary = f"{_one_line(notice.title)} ({notice.incident})"
    if notice.summary:
        summary += f" \u2014 {_one_line(notice.summary)}"
    payload: dict[str, Any] = {
        "summary": truncate(summary, PAGERDUTY_SUMMARY_MAX),
        "source": notice.target or notice.incident,
        "severity": PAGERDUTY_SEVERITY[notice.severity],
        "timestamp": notice.timestamp.isoformat(),
        "group": notice.namespace,
    }
    if notice.target:
        payload["component"] = notice.target
    if notice.category:
        payload["class"] = notice.category
    payload["custom_details"] = _details(notice)
    event["payload"] = payload
    event["client"] = CLIENT
    if notice.links:
        event["links"] = [{"href": url, "text": text} for text, url in notice.links]
    return event


def _details(notice: Notice) -> dict[str, str]:
    out = {"incident": notice.incident, "kind": notice.kind.value}
    if notice.level:
        out["level"] = str(notice.level)
    if notice.summary:
        out["summary"] = notice.summary
    if notice.target:
        out["target"] = notice.target
    if notice.recipients:
        out["recipients"] = ", ".join(m.name for m in notice.recipients)
    if notice.actor:
        out["actor"] = notice.actor
    if notice.description:
        out["description"] = truncate(notice.description, 4096)
    for key, items in (("runbook", notice.checklist), ("actions", notice.actions), ("paged", notice.paged)):
        if items:
            out[key] = "\n".join(bounded(items))
    out.update(notice.details)
    return out


# --- Email --------------------------------------------------------------------------------


def email_message(notice: Notice, sender: str, to: Sequence[str]) -> email.message.EmailMessage:
    """A plain-text email: subject ``[CRITICAL] title (ns/name)`` (prefixed with what happened unless a page).

    Raises ValueError when ``to`` is empty.
    """
    if not to:
        raise ValueError("an email needs at least one recipient")
    msg = email.message.EmailMessage(policy=_EMAIL_POLICY)
    sev = notice.severity.value.upper()
    title = _one_line(notice.title)
    if notice.kind == NoticeKind.PAGE:
        subject = f"[{sev}] {title} ({notice.incident})"
    else:
        subject = f"[{sev}] {_label(notice)}: {title} ({notice.incident})"
    msg["Subject"] = subject
    msg["From"] = _one_line(sender)
    msg["To"] = ", ".join(_one_line(a) for a in to)
    msg["Date"] = email.utils.format_datetime(notice.timestamp)
    msg["Message-ID"] = f"<{delivery_id(notice)}@{DEDUP_PREFIX}>"
    thread = hashlib.sha256(notice.dedup_key.encode()).hexdigest()[:32]
    msg["References"] = f"<{thread}@{DEDUP_PREFIX}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to the operator
    msg["X-Oncall-Incident"] = notice.incident
    msg["X-Oncall-Kind"] = notice.kind.value
    msg["X-Oncall-Severity"] = notice.severity.value
    if notice.severity == base.Severity.CRITICAL and notice.kind in (NoticeKind.PAGE, NoticeKind.REMINDER):
        msg["Importance"] = "high"
        msg["X-Priority"] = "1"
    msg.set_content(_email_body(notice))
    return msg


def _email_body(notice: Notice) -> str:
    rows = [
        ("Incident", notice.incident),
        ("Severity", notice.severity.value),
        ("Target", notice.target),
        ("Level", str(notice.level) if notice.level else ""),
        ("Category", notice.category),
        ("By", notice.actor),
        ("Paged" if notice.kind in (NoticeKind.PAGE, NoticeKind.REMINDER) else "To", _people(notice.recipients)),
        ("When", notice.timestamp.isoformat()),
    ]
    lines = [headline(notice), ""]
    lines += [f"{k + ':':<10} {v}" for k, v in rows if v]
    if notice.summary:
        lines += ["", notice.summary]
    if notice.description:
        lines += ["", notice.description]
    for head, items in _lists(notice):
        if items:
            lines += ["", f"{head}:"] + [f"- {_one_line(i)}" for i in bounded(items)]
    if notice.links:
        lines += ["", "Links:"] + [f"- {_one_line(t)}: {u}" for t, u in notice.links]
    if notice.details:
        lines += ["", "Details:"] + [f"  {k}: {v}" for k, v in notice.details.items()]
    lines += ["", "-- ", f"Sent by {CLIENT}; dedup key {notice.dedup_key}."]
    if notice.kind in (NoticeKind.PAGE, NoticeKind.REMINDER):
        lines.append(f"Acknowledge: kubectl oncall ack {notice.name} -n {notice.namespace}")
    return "\n".join(lines) + "\n"


def _people(members: Sequence[schedule.Member]) -> str:
    return ", ".join(f"{m.name} <{m.email}>" if m.email else m.name for m in members)


# --- Generic webhook ----------------------------------------------------------------------


def webhook_body(notice: Notice) -> dict[str, Any]:
    """This project's webhook JSON, version "1" (the shape is documented in this module's docstring)."""
    incident: dict[str, Any] = {
        "namespace": notice.namespace,
        "name": notice.name,
        "title": notice.title,
        "severity": notice.severity.value,
    }
    for key, value in (("summary", notice.summary), ("target", notice.target), ("category", notice.category)):
        if value:
            incident[key] = value
    body: dict[str, Any] = {
        "version": WEBHOOK_VERSION,
        "id": delivery_id(notice),
        "kind": notice.kind.value,
        "timestamp": notice.timestamp.isoformat(),
        "dedupKey": notice.dedup_key,
        "incident": incident,
        "level": notice.level,
    }
    if notice.actor:
        body["actor"] = notice.actor
    body["recipients"] = [
        {k: v for k, v in (("name", m.name), ("email", m.email), ("slack", m.slack), ("phone", m.phone)) if v}
        for m in notice.recipients
    ]
    body["links"] = [{"text": text, "url": url} for text, url in notice.links]
    if notice.description:
        body["description"] = notice.description
    for key, items in (("checklist", notice.checklist), ("actions", notice.actions), ("paged", notice.paged)):
        if items:
            body[key] = list(items)
    body["details"] = dict(notice.details)
    return body


# --- helpers ------------------------------------------------------------------------------


def _lists(notice: Notice) -> tuple[tuple[str, Sequence[str]], ...]:
    """The runbook's checklist, the actions taken, everybody paged so far: each with its heading."""
    return (("Runbook", notice.checklist), ("Actions taken", notice.actions), ("Paged so far", notice.paged))


def _label(notice: Notice) -> str:
    label = _LABEL[notice.kind]
    if notice.actor and notice.kind in (NoticeKind.ACKNOWLEDGE, NoticeKind.RESOLVE):
        label += f" by {_one_line(notice.actor)}"
    return label


def _one_line(text: str) -> str:
    """Collapse whitespace (newlines included): headers and summaries are single lines."""
    return _WHITESPACE.sub(" ", text).strip()

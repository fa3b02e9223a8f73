"""A person answers a page from its signed link: see the Incident, then acknowledge, resolve or write an update.

``adapters/answers.py`` hands every ``/answer/...`` request here. The Incident is read, the
token verified against its namespace, name and uid (:mod:`~oncall_operator.domain.answer_links`),
and a GET renders the page; a POST writes the answer through the Incident writer's
read-modify-write (:mod:`~oncall_operator.adapters.incidents`) with
:mod:`~oncall_operator.domain.lifecycle`: who is the person the link was made for, how is
``link``, and the timeline says both. The operator writes it (its ServiceAccount), so the
admission policy's rule that users acknowledge only as themselves stays whole: a person without
Kubernetes access answers through a link only the operator could sign. The Incident's watch
event then reaches the escalation, which stops paging at once.

A click on a Slack button (:func:`slack`) carries the same signed path; who answered is the
Slack user, mapped to the schedule member with that Slack member ID (``via: slack``), and the
message is updated through Slack's ``response_url`` to say who. A PagerDuty webhook
(:func:`pagerduty`) is mapped back by our dedup key. An SMS reply (:func:`sms`) answers as the
member with that phone; a call's "press 1" (:func:`voice`) as the person its signed gather names.
"""

import collections.abc as cabc
import datetime as dt
import logging
import urllib.parse
from typing import Any

import aiohttp

from oncall_operator.adapters import apiserver, incidents, intake
from oncall_operator.api import GROUP, VERSION, incident, kinds, policy, schedule
from oncall_operator.domain import (
    answer_links,
    answer_page,
    lifecycle,
    pagerduty_answers,
    people,
    slack_answers,
    tenancy,
    twilio_answers,
)
from oncall_operator.executor import context, indices, signing

log = logging.getLogger(__name__)
VIA = "link"
SLACK_HOOKS = "https://hooks.slack.com"
"""Where Slack's ``response_url`` points; the API allowlist (ONCALL_API_ENDPOINTS) is also accepted."""
Action = answer_links.Action
_LABEL = {Action.ACKNOWLEDGE: "Acknowledge", Action.RESOLVE: "Resolve", Action.UPDATE: "Post update"}


async def answer(
    ctx: context.Context, namespace: str, name: str, token: str, method: str, form: cabc.Mapping[str, str]
) -> tuple[int, str]:
    """(HTTP status, HTML page) for one request on an answer link."""
    key = await signing.key(ctx)
    if key is None:
        return 404, answer_page.refusal("Answer links are not enabled on this on-call operator.")
    found = await _verified(ctx, key, namespace, name, token)
    if isinstance(found, answer_links.Refusal):
        return (404 if found == answer_links.Refusal.MALFORMED else 403), answer_page.refusal(found.sentence)
    inc, claim = found
    if method != "POST":
        return 200, _page(key, inc, claim)
    if claim.action not in answer_links.CHANGES:
        return 405, _page(key, inc, claim, "Opening a link changes nothing: press a button to answer.", True)
    update = " ".join(form.get("update", "").split())[: answer_page.UPDATE_MAX]
    if claim.action == Action.UPDATE and not update:
        return 400, _page(key, inc, claim, "Write the update first.", True)
    written = await _write(ctx, inc, claim.action, claim.person, VIA, update)
    if written is None:
        return 403, answer_page.refusal(answer_links.Refusal.FOREIGN.sentence)
    after, text, ok = written
    return (200 if ok else 409), _page(key, after, claim, text, not ok)


async def _verified(
    ctx: context.Context, key: bytes, namespace: str, name: str, token: str
) -> tuple[incident.Incident, answer_links.Claim] | answer_links.Refusal:
    """The Incident a token names, and its claim; or why it does not act (a missing Incident is "foreign")."""
    if len(token) > answer_links.TOKEN_MAX or len(namespace) > 63 or len(name) > 253:
        return answer_links.Refusal.MALFORMED
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    raw = await _read(ctx, namespace, name)
    bound = answer_links.Incident(namespace, name, str((raw or {}).get("metadata", {}).get("uid", "")))
    claim = answer_links.verify(key, token, bound, now)
    if isinstance(claim, answer_links.Refusal):
        return claim
    if raw is None:
        return answer_links.Refusal.FOREIGN  # no Incident of that name: say no more than for another's link
    return incident.Incident.model_validate(raw), claim


async def _read(ctx: context.Context, namespace: str, name: str) -> dict[str, Any] | None:
    """The Incident as the API server has it (None: none of that name); :class:`intake.Unavailable` on trouble."""
    if not (_plain(namespace) and _plain(name)):
        return None
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{kinds.INCIDENT.plural}/{name}"
    try:
        return await ctx.intake_api.call("GET", path)
    except (apiserver.ApiError, aiohttp.ClientError, TimeoutError) as error:
        raise intake.Unavailable(f"Incident {namespace}/{name} not readable now: {error}") from error


Written = tuple[incident.Incident, str, bool]
"""The Incident after the write, the sentence for the person, and whether it changed as asked."""


async def _write(
    ctx: context.Context, inc: incident.Incident, action: Action, person: str, via: str, update: str = ""
) -> Written | None:
    """``person``'s answer written by the operator into ``inc`` (the same uid); None when it is gone."""
    said = {"text": "", "refused": ""}
    namespace, name = inc.metadata.namespace, inc.metadata.name
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.metadata.uid != inc.metadata.uid:
            said["refused"] = answer_links.Refusal.FOREIGN.sentence
            return None
        status = current.status or incident.IncidentStatus()
        try:
            new, text = _edit(status, action, person, via, now, update)
        except ValueError as error:
            said["refused"] = f"Nothing changed: the incident {error}."
            return None
        said["text"] = f"{name} {text}."
        return new

    try:
        written = await incidents.update_status_async(ctx.api, namespace, name, mutate)
    except (incidents.ConflictsExhausted, apiserver.ApiError, aiohttp.ClientError, TimeoutError) as error:
        raise intake.Unavailable(f"Incident {namespace}/{name} not written now: {error}") from error
    if written is None or said["refused"] == answer_links.Refusal.FOREIGN.sentence:
        return None
    return written.incident, said["refused"] or said["text"], not said["refused"]


def _edit(
    status: incident.IncidentStatus, action: Action, person: str, via: str, now: dt.datetime, update: str
) -> lifecycle.Edit:
    if action == Action.ACKNOWLEDGE:
        return lifecycle.acknowledge(status, person, now, via=via)
    if action == Action.RESOLVE:
        return lifecycle.resolve(status, person, now, via=via)
    if status.phase == incident.Phase.RESOLVED:
        raise ValueError(f"is already resolved (by {status.resolved_by or 'the operator'})")
    st = status.model_copy(deep=True)
    lifecycle.add(st, now, "StatusUpdate", f"{update} (by {person} via {via})", actor=person)
    return st, f"has your update, {person}"


def _page(
    key: bytes, inc: incident.Incident, claim: answer_links.Claim, notice: str = "", refused: bool = False
) -> str:
    """The page with the buttons this Incident still takes, each signed for the same person and expiry."""
    status = inc.status or incident.IncidentStatus()
    wanted: list[Action] = []
    if status.phase != incident.Phase.RESOLVED:
        if status.phase != incident.Phase.ACKNOWLEDGED:
            wanted.append(Action.ACKNOWLEDGE)
        wanted += [Action.RESOLVE, Action.UPDATE]
    target = signing.bound(inc)
    buttons = [
        answer_page.Button(
            a.value,
            _LABEL[a],
            answer_links.path(target, answer_links.sign(key, target, claim.person, a, claim.expires)),
        )
        for a in wanted
    ]
    return answer_page.page(inc, claim.person, buttons, notice, refused)


def _plain(segment: str) -> bool:
    """A Kubernetes name (DNS subdomain characters): anything else is never an Incident's, and never sent on."""
    return bool(segment) and all(c.isascii() and (c.isalnum() or c in "-.") for c in segment) and segment[0] != "."


# --- Slack buttons -----------------------------------------------------------------------


async def slack(ctx: context.Context, click: slack_answers.Click) -> cabc.Coroutine[None, None, None] | None:
    """A verified click on a page's Slack button: answer as the member with that Slack ID.

    Returns the message update, for the route to send after its answer: Slack wants the HTTP
    answer within three seconds, and its ``response_url`` may take longer.
    """
    text, ok = await _slack_answer(ctx, click)
    log.info("Slack click by %s on %s: %s", click.user, "/".join(click.value.split("/")[:2])[:300], text)
    refusal = tenancy.endpoint_refusal(
        click.response_url, (SLACK_HOOKS, *ctx.config.api_endpoints), "Slack", "ONCALL_API_ENDPOINTS"
    )
    if refusal is not None:
        log.warning("Slack click: no message update: %s", refusal)
        return None
    body = (
        slack_answers.answered(click.blocks, text)
        if ok
        else {"response_type": "ephemeral", "replace_original": False, "text": text}
    )
    return _update_message(ctx, click.response_url, body)


async def _update_message(ctx: context.Context, url: str, body: dict[str, Any]) -> None:
    try:
        async with ctx.http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as reply:
            if reply.status >= 300:
                log.warning("Slack click: the message update got HTTP %d", reply.status)
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("Slack click: the message update failed: %s", error)


async def _slack_answer(ctx: context.Context, click: slack_answers.Click) -> tuple[str, bool]:
    key = await signing.key(ctx)
    if key is None:
        return "Answer links are not enabled on this on-call operator.", False
    namespace, _, rest = click.value.partition("/")
    name, _, token = rest.partition("/")
    found = await _verified(ctx, key, urllib.parse.unquote(namespace), urllib.parse.unquote(name), token)
    if isinstance(found, answer_links.Refusal):
        return found.sentence, False
    inc, claim = found
    if claim.action not in (Action.ACKNOWLEDGE, Action.RESOLVE):
        return "This button does not answer.", False
    person = _slack_member(ctx, inc, click.user)
    if person is None:
        return (
            f"<@{click.user}> is no member of this incident's schedules (by Slack member ID): nothing changed.",
            False,
        )
    written = await _write(ctx, inc, claim.action, person, "slack")
    if written is None:
        return answer_links.Refusal.FOREIGN.sentence, False
    _, text, ok = written
    return (f"{text} (<@{click.user}>)" if ok else text), ok


def _slack_member(ctx: context.Context, inc: incident.Incident, user: str) -> str | None:
    """The name of the member with Slack ID ``user`` in the schedules the Incident's policy pages."""
    return next((m.name for m in _members(ctx, inc) if user and m.slack == user), None)


def _members(ctx: context.Context, inc: incident.Incident) -> list[schedule.Member]:
    """The members of the schedules the Incident's policy pages (from the indices: no API call)."""
    found = ctx.indices.policy_for(inc)
    if found is None:
        return []
    namespace, spec = found
    names = {t.schedule.name for lv in spec.levels for t in lv.targets if t.schedule} | {
        r.target.schedule.name for r in spec.routes if r.target.schedule
    }
    schedules: dict[str, schedule.OnCallScheduleSpec] = indices.lookup(ctx.indices.schedules, namespace, names)
    return [m for s in schedules.values() for m in s.members]


# --- PagerDuty webhooks ------------------------------------------------------------------


async def pagerduty(ctx: context.Context, event: pagerduty_answers.Event) -> None:
    """An acknowledgement or resolution in PagerDuty of an alert we sent: the same on the Incident.

    Who: the schedule member named like the PagerDuty user who did it, else that user's name as
    PagerDuty gave it, else the person whose alert it was. Only an Incident that paged through a
    PagerDuty channel of its policy is answered (the dedup key is then ours).
    """
    raw = await _read(ctx, event.namespace, event.name)
    where = f"{event.namespace}/{event.name}"
    if raw is None:
        log.info("PagerDuty %s of %s: no such Incident", event.action, where)
        return
    inc = incident.Incident.model_validate(raw)
    found = ctx.indices.policy_for(inc)
    channels = {c.name for c in found[1].channels if c.type == policy.ChannelType.PAGER_DUTY} if found else set()
    sent = inc.status.escalation.notifications if inc.status else []
    if not any(n.channel in channels for n in sent):
        log.info("PagerDuty %s of %s: the Incident paged through no PagerDuty channel; ignored", event.action, where)
        return
    members = _members(ctx, inc)
    named = next((m.name for m in members if event.agent and m.name.lower() == event.agent.lower()), "")
    owner = next((m.name for m in members if people.person_key(m.name) == event.person_key), "")
    who = named or (f"{event.agent} (PagerDuty)" if event.agent else owner or "PagerDuty")
    written = await _write(ctx, inc, Action(event.action), who, "pagerduty")
    log.info("PagerDuty %s of %s by %s: %s", event.action, where, who, written[1] if written else "gone")


# --- Twilio: an SMS reply, a call's "press 1" --------------------------------------------

SMS_HELP = "Reply ACK or RESOLVE, and the incident's name when several are open."
SHOWN = 5


async def sms(ctx: context.Context, params: cabc.Mapping[str, str]) -> str:
    """A signed SMS to our number: the member with that phone answers the open Incident that paged them."""
    reply = twilio_answers.parse_sms(params.get("Body", ""))
    if reply is None:
        return SMS_HELP
    phone = params.get("From", "")
    paged: list[tuple[incident.Incident, str]] = []
    for body in list(ctx.incidents.entries.values()):
        inc = incident.Incident.model_validate(dict(body.body))
        person = next((m.name for m in _members(ctx, inc) if phone and m.phone == phone), None)
        if person is None or not _paged(inc, person):
            continue
        names = {inc.metadata.name, f"{inc.metadata.namespace}/{inc.metadata.name}"}
        if not reply.incident or reply.incident in names:
            paged.append((inc, person))
    if not paged:
        return "No open incident paged you" + (f" as {reply.incident}." if reply.incident else ".")
    if len(paged) > 1:
        listed = ", ".join(i.metadata.name for i, _ in paged[:SHOWN]) + (" ..." if len(paged) > SHOWN else "")
        return f"Several open incidents paged you: {listed}. Reply {reply.action.name} and the name."
    inc, person = paged[0]
    written = await _write(ctx, inc, reply.action, person, "sms")
    return written[1] if written else answer_links.Refusal.FOREIGN.sentence


async def voice(ctx: context.Context, answer: str, digits: str) -> str:
    """A page call's gather: "1" acknowledges as the person called (the signed path says who)."""
    if digits != "1":
        return "Nothing changed. Goodbye."
    key = await signing.key(ctx)
    namespace, _, rest = answer.partition("/")
    name, _, token = rest.partition("/")
    found = await _verified(ctx, key, namespace, name, token) if key else answer_links.Refusal.MALFORMED
    if isinstance(found, answer_links.Refusal):
        return found.sentence
    inc, claim = found
    if claim.action != Action.ACKNOWLEDGE:
        return "Nothing changed. Goodbye."
    written = await _write(ctx, inc, Action.ACKNOWLEDGE, claim.person, "voice")
    return (written[1] + " Thank you.") if written else answer_links.Refusal.FOREIGN.sentence


def _paged(inc: incident.Incident, person: str) -> bool:
    """Whether the open Incident paged ``person`` (by name, in its notifications) and is not resolved."""
    status = inc.status
    if status is None or status.phase == incident.Phase.RESOLVED:
        return False
    return any(person in n.user.split(", ") for n in status.escalation.notifications if n.kind == "page")

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
"""

import collections.abc as cabc
import datetime as dt

from oncall_operator.adapters import incidents
from oncall_operator.api import GROUP, VERSION, incident, kinds
from oncall_operator.domain import answer_links, answer_page, lifecycle
from oncall_operator.executor import context, signing

VIA = "link"
Action = answer_links.Action
_LABEL = {Action.ACKNOWLEDGE: "Acknowledge", Action.RESOLVE: "Resolve", Action.UPDATE: "Post update"}


async def answer(
    ctx: context.Context, namespace: str, name: str, token: str, method: str, form: cabc.Mapping[str, str]
) -> tuple[int, str]:
    """(HTTP status, HTML page) for one request on an answer link."""
    key = await signing.key(ctx)
    if key is None:
        return 404, answer_page.refusal("Answer links are not enabled on this on-call operator.")
    if len(token) > answer_links.TOKEN_MAX or len(namespace) > 63 or len(name) > 253:
        return 404, answer_page.refusal(answer_links.Refusal.MALFORMED.sentence)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{kinds.INCIDENT.plural}/{name}"
    raw = await ctx.intake_api.call("GET", path) if _plain(namespace) and _plain(name) else None
    bound = answer_links.Incident(namespace, name, str((raw or {}).get("metadata", {}).get("uid", "")))
    claim = answer_links.verify(key, token, bound, now)
    if raw is None and claim != answer_links.Refusal.MALFORMED:
        claim = answer_links.Refusal.FOREIGN  # no Incident of that name: say no more than for another's link
    if isinstance(claim, answer_links.Refusal):
        return (404 if claim == answer_links.Refusal.MALFORMED else 403), answer_page.refusal(claim.sentence)
    assert raw is not None
    inc = incident.Incident.model_validate(raw)
    if method != "POST":
        return 200, _page(key, inc, claim)
    if claim.action not in answer_links.CHANGES:
        return 405, _page(key, inc, claim, "Opening a link changes nothing: press a button to answer.", True)
    said = {"text": "", "refused": ""}
    update = " ".join(form.get("update", "").split())[: answer_page.UPDATE_MAX]
    if claim.action == Action.UPDATE and not update:
        return 400, _page(key, inc, claim, "Write the update first.", True)

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.metadata.uid != inc.metadata.uid:
            said["refused"] = answer_links.Refusal.FOREIGN.sentence
            return None
        status = current.status or incident.IncidentStatus()
        try:
            new, text = _edit(status, claim, now, update)
        except ValueError as error:
            said["refused"] = f"Nothing changed: the incident {error}."
            return None
        said["text"] = f"{current.metadata.name} {text}."
        return new

    written = await incidents.update_status_async(ctx.api, namespace, name, mutate)
    if written is None:
        return 403, answer_page.refusal(answer_links.Refusal.FOREIGN.sentence)
    if said["refused"]:
        return 409, _page(key, written.incident, claim, said["refused"], True)
    return 200, _page(key, written.incident, claim, said["text"])


def _edit(status: incident.IncidentStatus, claim: answer_links.Claim, now: dt.datetime, update: str) -> lifecycle.Edit:
    if claim.action == Action.ACKNOWLEDGE:
        return lifecycle.acknowledge(status, claim.person, now, via=VIA)
    if claim.action == Action.RESOLVE:
        return lifecycle.resolve(status, claim.person, now, via=VIA)
    if status.phase == incident.Phase.RESOLVED:
        raise ValueError(f"is already resolved (by {status.resolved_by or 'the operator'})")
    st = status.model_copy(deep=True)
    lifecycle.add(st, now, "StatusUpdate", f"{update} (by {claim.person} via {VIA})", actor=claim.person)
    return st, f"has your update, {claim.person}"


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

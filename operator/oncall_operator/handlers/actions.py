"""Alert Incidents: run their runbook's actions, one per event, until the round is over.

Called from the Incident event handler (:mod:`~oncall_operator.handlers.incidents`), which
stores nothing on the Incident (no finalizer, no progress annotation): the state of the round
is ``status.actions`` itself, so each status write the executor makes is the
event that takes the next action. Incidents the OOM watch opened are left to it (it has the
kill's facts); a Resolved Incident gets nothing. Everything else is in
:mod:`oncall_operator.action_executor`.
"""

from typing import Any

import kopf

from oncall_operator import action_executor
from oncall_operator.api import incident
from oncall_operator.domain import matching
from oncall_operator.handlers import escalation, objects


def _wants_actions(body: kopf.Body) -> bool:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    phase = status.get("phase")
    source = (spec.get("source") or {}).get("type")
    return (
        bool(spec.get("runbookRef"))
        and bool(phase)
        and phase != incident.Phase.RESOLVED.value
        and (source != incident.SourceType.OOM_KILL.value)
    )


async def on_event(type: str, body: kopf.Body, memo: Any) -> None:
    if type == "DELETED" or not _wants_actions(body):
        return
    inc = incident.Incident.model_validate(dict(body))
    ref = inc.spec.runbook_ref
    assert ref is not None
    rb_ns = ref.namespace or inc.metadata.namespace
    indices: objects.Indices = memo.indices
    spec = objects.lookup(indices.runbooks, rb_ns, [ref.name]).get(ref.name)
    if spec is None or not spec.actions:
        return
    found = escalation.policy_for(inc, indices.policies, indices.runbooks)
    policy = action_executor.Policy(*found) if found else None
    chosen = matching.Chosen(rb_ns, ref.name, spec)
    await action_executor.run(memo.kube, memo.oom, memo.http, body, chosen, policy, memo.oom_options)

"""Alert Incidents: run their runbook's actions, one per event, until the round is over.

``@kopf.on.event`` stores nothing on the Incident (no finalizer, no progress annotation): the
state of the round is ``status.actions`` itself, so each status write the executor makes is the
event that takes the next action. Incidents the OOM watch opened are left to it (it has the
kill's facts); a Resolved Incident gets nothing. Everything else is in
:mod:`oncall_operator.action_executor`.
"""

from typing import Any

import kopf

from oncall_operator import action_executor
from oncall_operator.api import GROUP, VERSION, incident, kinds
from oncall_operator.domain import matching
from oncall_operator.handlers import escalation, objects


def _wants_actions(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    phase = status.get("phase")
    source = (spec.get("source") or {}).get("type")
    return (
        bool(spec.get("runbookRef"))
        and bool(phase)
        and phase != incident.Phase.RESOLVED.value
        and (source != incident.SourceType.OOM_KILL.value)
    )


@kopf.on.event(GROUP, VERSION, kinds.INCIDENT.plural, when=_wants_actions)
async def incident_actions(type: str, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    if type == "DELETED":
        return
    inc = incident.Incident.model_validate(dict(body))
    ref = inc.spec.runbook_ref
    assert ref is not None
    rb_ns = ref.namespace or inc.metadata.namespace
    spec = objects.lookup(kwargs["runbook_specs"], rb_ns, [ref.name]).get(ref.name)
    if spec is None or not spec.actions:
        return
    found = escalation.policy_for(inc, kwargs["policy_specs"], kwargs["runbook_specs"])
    policy = action_executor.Policy(*found) if found else None
    chosen = matching.Chosen(rb_ns, ref.name, spec)
    await action_executor.run(memo.kube, memo.oom, memo.http, body, chosen, policy, memo.oom_options)

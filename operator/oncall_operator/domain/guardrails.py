"""The guardrails every automatic change passes, whoever planned it: the OOM raise or a runbook action.

Pure: the Runbook's guardrails, the Incident's guardrail state, the object as read and ``now``
go in; a :class:`Refusal` (or None) comes out. Both planners (:mod:`.oom_plan` for OOM kills,
:mod:`.actions` for runbook actions) call :func:`refusal` after their own checks of what the
action is, in the same order: a maintenance window pausing actions, opt-out, paused, GitOps,
cooldown, rate. :func:`marker_ops` is the JSON patch that writes a change's marker annotation
in the same patch as the change, so a crash between the patch and the Incident write is
recorded as done instead of acting twice.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
from typing import Any

from oncall_operator.api import durations, incident, runbook
from oncall_operator.domain import maintenance, workload


@dataclasses.dataclass(frozen=True)
class Refusal:
    reason: str
    text: str
    human: bool = True
    """Whether a human is needed (False: the cooldown, which passes by itself)."""


@dataclasses.dataclass(frozen=True)
class Subject:
    """What the guardrails look at of the object to change."""

    kind: str
    where: str
    """How messages name it ("the Deployment", "ConfigMap ns/flags")."""
    annotations: cabc.Mapping[str, str] | None
    labels: cabc.Mapping[str, str]
    paused: bool = False


def refusal(
    guard: runbook.Guardrails,
    status: incident.IncidentStatus | None,
    subject: Subject,
    namespace_annotations: cabc.Mapping[str, str],
    now: dt.datetime,
    paused_by: maintenance.Mute | None = None,
) -> Refusal | None:
    """The first guardrail that says no, or None; ``paused_by``: the maintenance window pausing actions here."""
    if paused_by is not None:
        return Refusal("Maintenance", paused_by.text("automatic actions"), human=False)
    out = workload.opted_out(namespace_annotations, subject.annotations, subject.where)
    if out:
        return Refusal("OptedOut", f"{out} says {workload.OPT_OUT}: {workload.OPT_OUT_VALUE}")
    if subject.paused:
        return Refusal("Paused", f"the {subject.kind} is paused: nothing is changed or restarted")
    tracker = workload.gitops_tracker(subject.labels, subject.annotations)
    if tracker and not guard.allow_git_ops:
        return Refusal("GitOpsManaged", f"tracked by {tracker}: change it in git (or set guardrails.allowGitOps)")
    state = (status or incident.IncidentStatus()).guardrails
    last = state.last_action_at
    if last is not None and now < last + durations.parse(guard.cooldown):
        return Refusal("Cooldown", f"last action at {last.isoformat()}, cooldown {guard.cooldown}", human=False)
    window = durations.parse(guard.window)
    recent = [t for t in state.action_times if t > now - window]
    if len(recent) >= guard.max_actions:
        return Refusal(
            "RateLimited", f"{len(recent)} actions in the last {guard.window} (maxActions {guard.max_actions})"
        )
    return None


def marker_ops(
    annotations: cabc.Mapping[str, str] | None, resource_version: str, marker: str, value: str
) -> list[dict[str, Any]]:
    """JSON patch operations that set annotation ``marker`` to ``value``.

    Without any annotation yet the whole map is added, which is only safe onto the object exactly
    as read: hence the ``test`` of its resourceVersion.
    """
    if annotations is None:
        return [
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/metadata/annotations", "value": {marker: value}},
        ]
    return [{"op": "add", "path": f"/metadata/annotations/{escape(marker)}", "value": value}]


def escape(key: str) -> str:
    """A key as a JSON pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")

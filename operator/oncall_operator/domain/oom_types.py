"""The words of OOM planning, shared by its pieces: what a plan is, what it is planned from, how it ended.

:mod:`oom_plan` decides, :mod:`oom_raise` works out a memory raise, :mod:`oom_changes` writes the
exact JSON patches; all three speak these types. A planner that has decided early (a refusal, a
superseded kill) raises :class:`Stop` with its plan instead of threading it back up by hand.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import enum

from oncall_operator.api import durations, incident, runbook
from oncall_operator.domain import changes, maintenance, matching, oom, workload

ActionType = runbook.ActionType
State = incident.ActionState
Change = changes.Change


class Mode(enum.StrEnum):
    NOTHING = "Nothing"  # every kill is counted already: no write at all
    RECORD = "Record"  # count the kills, no action (superseded)
    REFUSE = "Refuse"  # count them, record the action refused (and what it would have been)
    AWAIT = "AwaitApproval"  # the runbook wants a person to approve this action
    RECOVER = "Recover"  # the change was applied before a crash: record it as applied
    DRY_RUN = "DryRun"  # server-side dry-run only, record the planned patch
    APPLY = "Apply"  # server-side dry-run, then the patch


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: Mode
    new: tuple[oom.Kill, ...] = ()
    kill: oom.Kill | None = None
    change: Change | None = None
    reason: str = ""
    message: str = ""
    needs_human: bool = False
    resize: Change | None = None
    """The in-place resize of the killed pod to try first (``strategy: InPlace``); ``change`` is then
    the template change recommended, and patched only when the resize is refused."""
    follow_up: bool = False
    """A step after an in-place resize, with no new kill: the template patch when the kubelet could not
    resize (Infeasible, or not done by the deadline), or a note on the timeline (deferred, completed)."""
    recheck_at: dt.datetime | None = None
    """When to look at the pod again even if it does not change: the deadline of an in-place resize."""


@dataclasses.dataclass(frozen=True)
class Situation:
    pod: oom.PodFacts
    target_kind: str
    workload: workload.Workload | None
    namespace_annotations: cabc.Mapping[str, str]
    runbook: matching.Chosen | None
    status: incident.IncidentStatus | None
    dry_run: bool
    now: dt.datetime
    paused_by: maintenance.Mute | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a plan ended, once the executor ran it; ``state`` None means no action to record."""

    state: State | None
    reason: str = ""
    message: str = ""
    needs_human: bool = False


class Stop(Exception):
    """A planner decided: ``plan`` is the answer."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan


def refuse(
    new: tuple[oom.Kill, ...],
    kill: oom.Kill,
    reason: str,
    message: str,
    change: Change | None = None,
    human: bool = True,
) -> Stop:
    """A refusal to raise, naming the change that would have been made (a recommendation) if there is one."""
    if change is not None:
        message = f"{message}; recommended: {change.summary}"
    return Stop(Plan(Mode.REFUSE, new, kill, change, reason, message, human))


def rule(chosen: matching.Chosen | None) -> runbook.RaiseMemoryLimit | None:
    """The runbook's raiseMemoryLimit settings, if it has that action."""
    actions = chosen.spec.actions if chosen else ()
    return next((a.raise_memory_limit for a in actions if a.raise_memory_limit is not None), None)


def resize_deadline(chosen: matching.Chosen | None) -> dt.timedelta:
    """How long an in-place resize may take before the template is patched instead (``guardrails.resizeDeadline``)."""
    guard = chosen.spec.guardrails if chosen else runbook.Guardrails()
    return durations.parse(guard.resize_deadline)

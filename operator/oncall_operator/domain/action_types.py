"""The vocabulary of a runbook's actions on alert Incidents: plans, facts, refusals, and the names they share.

:mod:`oncall_operator.domain.actions` decides which action is due and how it is recorded;
:mod:`oncall_operator.domain.action_changes` builds the exact change of each one. Both speak in
these types, so neither imports the other's internals. Pure: no I/O, no clock.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import enum
from typing import Any

from oncall_operator.api import incident, runbook, schedule
from oncall_operator.api import policy as policies
from oncall_operator.domain import changes, maintenance

ActionType = runbook.ActionType
State = incident.ActionState
Phase = incident.Phase
MARKER = "oncall.dev/remediated-action"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
ANNOTATIONS_TO_SKIP = frozenset(
    {  # kubectl's rollback.go: kept from the Deployment, never copied from the ReplicaSet
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
DOES_NOT_APPLY = frozenset(
    {
        "NotChangedRecently",
        "NoPreviousRevision",
        "RollbackUnsupported",
        "AlreadyAtPreviousRevision",
        "NoFlagLabel",
        "ConfigMapNotFound",
        "FlagAlreadySet",
        "NoTarget",
        "NotForAlerts",
    }
)
"""Refusal reasons that mean "this action does not fit the situation": the next action runs."""


class Mode(enum.StrEnum):
    REFUSE = "Refuse"
    AWAIT = "AwaitApproval"
    RECOVER = "Recover"  # the object already carries this action's marker: record it as applied
    DRY_RUN = "DryRun"
    APPLY = "Apply"
    NOTIFY = "Notify"


Change = changes.Change


@dataclasses.dataclass(frozen=True)
class Message:
    """A notify action's message and the policy channels it goes to."""

    channels: tuple[str, ...]
    text: str
    recipients: tuple[schedule.Member, ...] = ()
    """The team, with its own address: an Email channel mails it (besides the channel's fixed ``to``)."""


@dataclasses.dataclass(frozen=True)
class Plan:
    action: runbook.Action
    round: str
    mode: Mode
    change: Change | None = None
    message: Message | None = None
    reason: str = ""
    text: str = ""
    needs_human: bool = False


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the executor read for one action; objects are plain dicts as the API server returns them."""

    now: dt.datetime
    target: cabc.Mapping[str, Any] | None = None
    replica_sets: tuple[cabc.Mapping[str, Any], ...] = ()
    controller_revisions: tuple[cabc.Mapping[str, Any], ...] = ()
    hpas: tuple[cabc.Mapping[str, Any], ...] = ()
    config_map: cabc.Mapping[str, Any] | None = None
    namespace_annotations: cabc.Mapping[str, str] = dataclasses.field(default_factory=dict)
    policy: policies.EscalationPolicySpec | None = None
    in_scope: bool = True
    dry_run: bool = False
    paused_by: maintenance.Mute | None = None
    muted_by: maintenance.Mute | None = None
    """The window muting the Incident's pages: it holds a ``notify`` too (recorded, not sent)."""


@dataclasses.dataclass(frozen=True)
class Due:
    action: runbook.Action
    round: str
    approval: incident.Approval | None = None


class Stop(Exception):
    """Raised with the plan that ends the planning (a refusal, a wait for approval, a held notify)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan


def refuse(due: Due, reason: str, text: str, change: Change | None = None, human: bool = True) -> Stop:
    if change is not None:
        text = f"{text}; recommended: {change.summary}"
    human = human and reason not in DOES_NOT_APPLY
    return Stop(Plan(due.action, due.round, Mode.REFUSE, change, None, reason, text, human))

"""Runbook: what to do when a given alert fires or a container is OOM-killed.

A runbook has a trigger (an Alertmanager ``alertname`` or the operator's own ``OOMKilled``
event, narrowed by label matchers), manual steps that become the Incident's checklist, and
automated actions from a fixed vocabulary. Each action either runs by itself or waits for
approval; all of them run inside the guardrails (cooldown, rate limit, caps, dry-run, GitOps
awareness), whose state is kept on the Incident so it survives restarts.
"""

import enum
from typing import Annotated

import pydantic

from oncall_operator.api import base


class TriggerEvent(enum.StrEnum):
    OOM_KILLED = "OOMKilled"


class MatchOp(enum.StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class Matcher(base.Model):
    """An Alertmanager-style label matcher."""

    label: Annotated[str, pydantic.Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]
    op: MatchOp = MatchOp.EQUAL
    value: Annotated[str, pydantic.Field(max_length=1024)]


class Trigger(base.Model):
    """What starts the runbook: an alert by name, the operator's own event, or either."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "has(self.alertName) || has(self.event)",
                "a trigger names an alertName, an event, or both",
            ),
        )
    )

    alert_name: Annotated[str, pydantic.Field(min_length=1, max_length=256)] | None = None
    event: TriggerEvent | None = None
    matchers: Annotated[list[Matcher], pydantic.Field(max_length=20)] = []


class Step(base.Model):
    """A manual step, copied into the Incident as a checklist item."""

    title: Annotated[str, pydantic.Field(min_length=1, max_length=512)]
    command: Annotated[str, pydantic.Field(max_length=4096)] = ""
    details: Annotated[str, pydantic.Field(max_length=8192)] = ""


class ActionType(enum.StrEnum):
    RESTART_ROLLOUT = "restartRollout"
    RAISE_MEMORY_LIMIT = "raiseMemoryLimit"
    SCALE = "scale"
    ROLLBACK = "rollback"
    SET_FEATURE_FLAG = "setFeatureFlag"
    NOTIFY = "notify"


class Approval(enum.StrEnum):
    AUTOMATIC = "Automatic"
    REQUIRED = "Required"


class RaiseStrategy(enum.StrEnum):
    TEMPLATE = "Template"
    IN_PLACE = "InPlace"


class RaiseMemoryLimit(base.Model):
    """new = max(old x factor, old + minStep), rounded up to whole Mi, capped at maxLimit (VPA's rule)."""

    factor: Annotated[float, pydantic.Field(gt=1.0, le=10.0)] = 1.2
    min_step: base.Quantity = "100Mi"
    max_limit: base.Quantity
    raise_request: bool = False
    allow_qos_change: bool = False
    restart_at_cap: Annotated[
        bool, pydantic.Field(description="Restart the rollout when the limit is already at the cap")
    ] = False
    strategy: Annotated[
        RaiseStrategy,
        pydantic.Field(
            description=(
                "Template: patch the workload's pod template (a rollout). InPlace: resize the killed pod through "
                "its resize subresource (no restart unless its resizePolicy says so) and recommend the template "
                "change; the template is patched when the node cannot resize (PodResizePending Infeasible) or the "
                "API server refuses the resize"
            )
        ),
    ] = RaiseStrategy.TEMPLATE
    set_missing_limit: Annotated[
        bool,
        pydantic.Field(
            description=(
                "When the container has no memory limit in its template, set one from what the kill shows "
                "(the limit it ran with, else its request, raised by this rule); otherwise it is only recommended"
            )
        ),
    ] = False
    max_raises: Annotated[
        int,
        pydantic.Field(
            ge=1,
            le=20,
            description="After this many raises in one Incident, stop and hand over to a human",
        ),
    ] = 3


class Scale(base.Model):
    step: Annotated[int, pydantic.Field(ge=1, le=100)] = 1
    max_replicas: Annotated[int, pydantic.Field(ge=1, le=1000)]


class Rollback(base.Model):
    if_changed_within: Annotated[
        base.Duration,
        pydantic.Field(description="Roll back only when the Deployment's template changed this recently"),
    ] = "1h"


class SetFeatureFlag(base.Model):
    config_map: base.Name
    key: Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] | None = None
    key_from_label: (
        Annotated[str, pydantic.Field(max_length=128, description="Take the key from this alert label")] | None
    ) = None
    value: Annotated[str, pydantic.Field(max_length=1024)] = "false"


class Notify(base.Model):
    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            ("has(self.team) || has(self.channel)", "notify needs a team or a channel"),
        )
    )

    team: base.Identifier | None = None
    channel: base.Identifier | None = None
    message: Annotated[str, pydantic.Field(max_length=4096)] = ""


class Action(base.Model):
    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "self.type != 'raiseMemoryLimit' || has(self.raiseMemoryLimit)",
                "raiseMemoryLimit needs its settings (maxLimit)",
                ".raiseMemoryLimit",
            ),
            (
                "self.type != 'scale' || has(self.scale)",
                "scale needs its settings (maxReplicas)",
                ".scale",
            ),
            (
                "self.type != 'setFeatureFlag' || has(self.setFeatureFlag)",
                "setFeatureFlag needs its settings (configMap, key)",
                ".setFeatureFlag",
            ),
            (
                "self.type != 'notify' || has(self.notify)",
                "notify needs its settings (team or channel)",
                ".notify",
            ),
        )
    )

    name: base.Identifier
    type: ActionType
    approval: Approval = Approval.AUTOMATIC
    continue_: Annotated[
        bool,
        pydantic.Field(
            alias="continue",
            description=(
                "Run the next action even after this one applied. Actions run in order; one that does not "
                "apply (nothing to roll back, no flag named) always lets the next run; notify never stops the list"
            ),
        ),
    ] = False
    raise_memory_limit: RaiseMemoryLimit | None = None
    scale: Scale | None = None
    rollback: Rollback | None = None
    set_feature_flag: SetFeatureFlag | None = None
    notify: Notify | None = None


class Guardrails(base.Model):
    """Bounds on automatic actions; their state lives in the Incident, not in memory."""

    cooldown: Annotated[
        base.Duration,
        pydantic.Field(description="Minimum time between two actions on one workload"),
    ] = "5m"
    max_actions: Annotated[
        int,
        pydantic.Field(ge=1, le=100, description="At most this many actions per workload per window"),
    ] = 3
    window: base.Duration = "1h"
    dry_run: Annotated[bool, pydantic.Field(description="Record the planned change, write nothing")] = False
    allow_git_ops: Annotated[bool, pydantic.Field(description="Patch workloads that Argo CD or Flux track")] = False
    quiet_period: Annotated[
        base.Duration,
        pydantic.Field(description="Resolve when no new trigger was seen for this long after mitigation"),
    ] = "30m"
    rollout_deadline: Annotated[
        base.Duration,
        pydantic.Field(description="Page a human when a change has not rolled out this long after it was applied"),
    ] = "15m"
    resize_deadline: Annotated[
        base.Duration,
        pydantic.Field(
            description=(
                "Patch the template instead when an in-place resize (strategy InPlace) is not done this long "
                "after it was applied (the kubelet deferred it, or it is stuck in progress)"
            )
        ),
    ] = "2m"


class RunbookSpec(base.Model):
    description: Annotated[str, pydantic.Field(max_length=4096)] = ""
    trigger: Trigger
    severity: base.Severity = base.Severity.WARNING
    contact: Annotated[str, pydantic.Field(max_length=256, description="The team the runbook names as contact")] = ""
    escalation_policy_ref: base.LocalRef | None = None
    steps: Annotated[list[Step], pydantic.Field(max_length=50)] = []
    actions: Annotated[
        list[Action],
        pydantic.Field(
            max_length=20,
            json_schema_extra=base.keyed("name"),
        ),
    ] = []
    guardrails: Guardrails = Guardrails()


class RunbookStatus(base.ObjectStatus):
    pass


class Runbook(base.Model):
    api_version: str = "oncall.dev/v1alpha1"
    kind: str = "Runbook"
    metadata: base.Metadata = base.Metadata()
    spec: RunbookSpec
    status: RunbookStatus | None = None

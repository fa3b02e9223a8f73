"""Building blocks shared by the four kinds: the model base, constrained strings, conditions.

Every field is camelCase on the wire (Kubernetes API conventions) and snake_case in Python.
Constraints are written once, here or on the field, and reach the API server through the
generated CRD (OpenAPI ``pattern``/bounds and CEL ``x-kubernetes-validations``).
"""

import datetime as dt
import enum
from typing import Annotated, Any

import pydantic
from pydantic import alias_generators

from oncall_operator.api import durations


class Model(pydantic.BaseModel):
    """Base of every API model: camelCase aliases, unknown fields refused, enums as values."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def keyed(*keys: str) -> dict[str, Any]:
    """``json_schema_extra`` for a list whose items are unique by ``keys`` (a map list):
    the API server then refuses duplicates and server-side apply merges items by key."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def validations(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """CEL rules for ``json_schema_extra``: (rule, message[, fieldPath])."""
    out = []
    for rule in rules:
        entry = {"rule": rule[0], "message": rule[1]}
        if len(rule) == 3:
            entry["fieldPath"] = rule[2]
        out.append(entry)
    return {"x-kubernetes-validations": out}


def _check_duration(value: str) -> str:
    durations.parse(value)
    return value


Duration = Annotated[
    str,
    pydantic.Field(pattern=durations.PATTERN, max_length=32),
    pydantic.AfterValidator(_check_duration),
]
"""A duration string like ``5m``, ``1h30m`` or ``7d`` (see :mod:`durations`)."""

Name = Annotated[
    str,
    pydantic.Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]
"""A Kubernetes object name (DNS subdomain)."""

Identifier = Annotated[
    str,
    pydantic.Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
"""A short lowercase name used inside a spec (roles, layers, levels, channels): a DNS label."""

Person = Annotated[str, pydantic.Field(min_length=1, max_length=128)]
"""Somebody who can be on call, by the name the schedule's members list uses."""

Email = Annotated[str, pydantic.Field(max_length=254, pattern=r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")]
"""One email address, bare (no display name, no list: nothing a header could be injected with)."""

ClockTime = Annotated[str, pydantic.Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", max_length=5)]
"""A wall-clock time of day, ``HH:MM``, 24-hour, in the object's time zone."""

Quantity = Annotated[
    str,
    pydantic.Field(
        max_length=64,
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$",
    ),
]
"""A memory quantity in Kubernetes notation, e.g. ``512Mi`` or ``2Gi``."""


class Weekday(enum.StrEnum):
    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"


class Severity(enum.StrEnum):
    """The handbook's severity guide; critical is P1, warning P2, info P3."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """A KEP-1623 condition (metav1.Condition)."""

    type: Annotated[str, pydantic.Field(min_length=1, max_length=316)]
    status: ConditionStatus
    reason: Annotated[
        str,
        pydantic.Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
    ]
    message: Annotated[str, pydantic.Field(max_length=32768)] = ""
    last_transition_time: dt.datetime
    observed_generation: Annotated[int, pydantic.Field(ge=0)] | None = None


ConditionList = Annotated[
    list[Condition],
    pydantic.Field(
        max_length=16,
        json_schema_extra=keyed("type"),
    ),
]


class ObjectStatus(Model):
    """The part of ``.status`` every kind shares: what generation was seen, and conditions."""

    observed_generation: Annotated[int, pydantic.Field(ge=0)] | None = None
    conditions: ConditionList = []


class LocalRef(Model):
    """A reference to another object of this API in the same namespace."""

    name: Name


class ObjectRef(Model):
    """A reference to another object of this API: in the referring object's namespace unless
    ``namespace`` says otherwise (an Incident in a workload's namespace that a default Runbook
    in the operator's namespace opened refers to that Runbook and its policy there)."""

    name: Name
    namespace: Annotated[str, pydantic.Field(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] | None = None


class SecretKeyRef(Model):
    """A key of a Secret in the object's namespace (credentials never sit in a spec)."""

    name: Name
    key: Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class Metadata(Model):
    """The slice of ObjectMeta the operator reads; everything else is passed through."""

    model_config = pydantic.ConfigDict(extra="allow")

    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    creation_timestamp: dt.datetime | None = None

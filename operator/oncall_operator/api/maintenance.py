"""MaintenanceWindow: planned work during which the operator stays quiet, on purpose and on the record.

A window is a time range, one-off (``start``/``end``) or recurring in an IANA zone the way
Alertmanager's ``time_intervals`` are (weekdays, times of day, days of month, months); a scope
(namespaces, workloads by label selector, alert matchers); and what it mutes: pages, automatic
actions, or both. Incidents still open and record everything during a window; they say they
are in maintenance, and what was held back. A window in a workload's namespace covers only that
namespace: only a window in the operator's namespace may name other namespaces (the operator
reports the difference as ``Ready=False``, it never widens a namespace user's reach).
"""

import datetime as dt
import enum
from typing import Annotated

import pydantic

from oncall_operator.api import base, runbook

EndClockTime = Annotated[str, pydantic.Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", max_length=5)]
"""``HH:MM`` or ``24:00`` (the end of the day), in the window's time zone."""

NamespaceName = Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]


class TimeRange(base.Model):
    """A time of day range, ``start`` included, ``end`` excluded; across midnight is two ranges."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(("self.start < self.end", "end must be after start (HH:MM)", ".end"))
    )

    start: base.ClockTime
    end: EndClockTime


DayOfMonth = Annotated[int, pydantic.Field(ge=-31, le=31, description="1..31, or -1 for the last day, -2...")]
Month = Annotated[int, pydantic.Field(ge=1, le=12)]


class Recurrence(base.Model):
    """Alertmanager's time interval: every listed field must match; an empty one matches everything."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "!has(self.daysOfMonth) || self.daysOfMonth.all(d, d != 0)",
                "days of month are 1..31 or -1..-31, never 0",
                ".daysOfMonth",
            ),
        )
    )

    time_zone: Annotated[
        str,
        pydantic.Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$", description="IANA zone"),
    ] = "UTC"
    weekdays: Annotated[list[base.Weekday], pydantic.Field(max_length=7)] = []
    times: Annotated[list[TimeRange], pydantic.Field(max_length=10, description="Empty: the whole day")] = []
    days_of_month: Annotated[list[DayOfMonth], pydantic.Field(max_length=31)] = []
    months: Annotated[list[Month], pydantic.Field(max_length=12)] = []


class Scope(base.Model):
    """What a window covers; every given part must match (an empty scope: the whole namespace)."""

    namespaces: Annotated[
        list[NamespaceName],
        pydantic.Field(
            max_length=50,
            description="Namespaces covered; only a window in the operator's namespace may name others. "
            "Empty: the window's own namespace (in the operator's namespace: every namespace)",
        ),
    ] = []
    workload_selector: Annotated[
        dict[str, Annotated[str, pydantic.Field(max_length=63)]],
        pydantic.Field(max_length=20, description="matchLabels on the labels of the Incident's workload"),
    ] = {}
    matchers: Annotated[
        list[runbook.Matcher],
        pydantic.Field(max_length=20, description="Alertmanager-style matchers on the Incident's labels"),
    ] = []


class Mutes(enum.StrEnum):
    PAGES = "Pages"
    ACTIONS = "Actions"
    ALL = "All"


class MaintenanceWindowSpec(base.Model):
    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            ("has(self.start) == has(self.end)", "a one-off window has both start and end"),
            ("has(self.start) != has(self.recurring)", "a window is either one-off (start, end) or recurring"),
            ("!has(self.start) || !has(self.end) || self.end > self.start", "end must be after start", ".end"),
        )
    )

    reason: Annotated[str, pydantic.Field(max_length=1024, description="What the planned work is")] = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    recurring: Recurrence | None = None
    scope: Scope = Scope()
    mutes: Annotated[Mutes, pydantic.Field(description="Pages, Actions (automatic ones) or All")] = Mutes.ALL


class MaintenanceWindowStatus(base.ObjectStatus):
    active: Annotated[bool, pydantic.Field(description="Whether the window is open now")] = False
    next_start: Annotated[
        dt.datetime | None, pydantic.Field(description="When it opens next (the current opening when active)")
    ] = None
    next_end: Annotated[dt.datetime | None, pydantic.Field(description="When the current or next opening ends")] = None


class MaintenanceWindow(base.Model):
    api_version: str = "oncall.dev/v1alpha1"
    kind: str = "MaintenanceWindow"
    metadata: base.Metadata = base.Metadata()
    spec: MaintenanceWindowSpec
    status: MaintenanceWindowStatus | None = None

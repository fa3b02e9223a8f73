"""Alertmanager webhook payloads (version 4): parsed and validated, with a reason for every refusal.

The intake answers a bad payload with 400, and Alertmanager does not retry a 4xx: the reason
must therefore be exact enough for a person to fix the sender (``alerts[2].labels: must be an
object of strings``), and everything Alertmanager itself sends must pass. The checks follow the
documented v4 fields; unknown fields are ignored, so a newer Alertmanager that adds one still
gets through. Firing and resolved are read from ``status`` (the group's and each alert's), never
from ``endsAt``: a firing alert carries an ``endsAt`` in the future, and a zero time
(``0001-01-01T00:00:00Z``) means "not set".

An alert group's identity is its ``groupKey``: both members of an HA Alertmanager pair compute
the same key for the same group, so :func:`incident_name` (a hash of it) gives one Incident name
for both deliveries. Each alert in the group is keyed by fingerprint and ``startsAt``: the same
alert re-sent, or delivered twice, has the same key; the same alert firing again after it was
resolved starts at a new time and so is a new occurrence.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import hashlib
import re
from typing import Any

VERSION = "4"
STATUSES = ("firing", "resolved")
MAX_ALERTS = 1000
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")
_ZERO_YEAR = 1


class Invalid(ValueError):
    """The payload is not a valid Alertmanager webhook v4 message; ``field`` says where."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclasses.dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    generator_url: str
    fingerprint: str

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def key(self) -> str:
        """``<fingerprint>@<startsAt>``: one firing of one alert, the same in every delivery of it."""
        start = self.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.starts_at else "unknown"
        return f"{self.fingerprint}@{start}"


@dataclasses.dataclass(frozen=True)
class Payload:
    version: str
    group_key: str
    truncated_alerts: int
    status: str
    receiver: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    alerts: tuple[Alert, ...]

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def alertname(self) -> str:
        """The group's alert name: its group label, else the label all its alerts share, else ''."""
        return self.group_labels.get("alertname") or self.common_labels.get("alertname") or ""


def parse(raw: object) -> Payload:
    """The payload as typed values, or :class:`Invalid` naming the first bad field."""
    if not isinstance(raw, dict):
        raise Invalid("body", f"must be a JSON object, not {_kind(raw)}")
    version = _string(raw, "version", required=True)
    if version != VERSION:
        raise Invalid("version", f'must be "{VERSION}" (Alertmanager webhook version 4), not {version!r}')
    group_key = _string(raw, "groupKey", required=True)
    if not group_key:
        raise Invalid("groupKey", "must not be empty")
    status = _status(raw, "status")
    truncated = raw.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise Invalid("truncatedAlerts", "must be a non-negative integer")
    items = raw.get("alerts")
    if not isinstance(items, list):
        raise Invalid("alerts", "is required and must be a list" if items is None else "must be a list")
    if not items:
        raise Invalid("alerts", "must hold at least one alert")
    if len(items) > MAX_ALERTS:  # the biggest outage must not be the one dropped: keep the first, count the rest
        truncated, items = truncated + len(items) - MAX_ALERTS, items[:MAX_ALERTS]
    alerts = tuple(_alert(item, f"alerts[{i}]") for i, item in enumerate(items))
    firing = [i for i, a in enumerate(alerts) if a.firing]
    if status == "firing" and not firing:
        raise Invalid("status", '"firing" but every alert is resolved')
    if status == "resolved" and firing:
        raise Invalid(f"alerts[{firing[0]}].status", '"firing" in a group whose status is "resolved"')
    return Payload(
        version=version,
        group_key=group_key,
        truncated_alerts=truncated,
        status=status,
        receiver=_string(raw, "receiver"),
        group_labels=_strings(raw, "groupLabels", "groupLabels"),
        common_labels=_strings(raw, "commonLabels", "commonLabels"),
        common_annotations=_strings(raw, "commonAnnotations", "commonAnnotations"),
        external_url=_string(raw, "externalURL"),
        alerts=alerts,
    )


def incident_name(payload: Payload) -> str:
    """``am-<alertname>-<12 hex of the groupKey>``: a DNS label (<= 63), the same from every replica."""
    digest = hashlib.sha256(payload.group_key.encode()).hexdigest()[:12]
    room = 63 - len("am--") - len(digest)
    safe = _DNS_UNSAFE.sub("-", payload.alertname.lower())[:room].strip("-")
    return f"am-{safe}-{digest}" if safe else f"am-{digest}"


def fingerprint(labels: cabc.Mapping[str, str]) -> str:
    """A stand-in for Alertmanager's fingerprint when a sender leaves it out: a hash of the labels."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _alert(raw: object, where: str) -> Alert:
    if not isinstance(raw, dict):
        raise Invalid(where, f"must be an object, not {_kind(raw)}")
    status = _status(raw, "status", where)
    if "labels" not in raw:
        raise Invalid(f"{where}.labels", "is required")
    labels = _strings(raw, "labels", f"{where}.labels")
    if not labels:
        raise Invalid(f"{where}.labels", "must hold at least one label")
    given = _string(raw, "fingerprint", where=where)
    return Alert(
        status=status,
        labels=labels,
        annotations=_strings(raw, "annotations", f"{where}.annotations"),
        starts_at=_time(raw, "startsAt", where),
        ends_at=_time(raw, "endsAt", where),
        generator_url=_string(raw, "generatorURL", where=where),
        fingerprint=given or fingerprint(labels),
    )


def _status(raw: dict[str, Any], name: str, where: str = "") -> str:
    value = _string(raw, name, required=True, where=where)
    if value not in STATUSES:
        raise Invalid(_path(where, name), f'must be "firing" or "resolved", not {value!r}')
    return value


def _string(raw: dict[str, Any], name: str, required: bool = False, where: str = "") -> str:
    value = raw.get(name)
    if value is None:
        if required:
            raise Invalid(_path(where, name), "is required")
        return ""
    if not isinstance(value, str):
        raise Invalid(_path(where, name), f"must be a string, not {_kind(value)}")
    return value


def _strings(raw: dict[str, Any], name: str, path: str) -> dict[str, str]:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Invalid(path, "must be an object of strings")
    if "" in value:
        raise Invalid(path, "has an empty label name")
    return dict(value)


def _time(raw: dict[str, Any], name: str, where: str) -> dt.datetime | None:
    text = _string(raw, name, where=where)
    if not text:
        return None
    match = _RFC3339.match(text)
    if match is None:
        raise Invalid(_path(where, name), f"must be an RFC 3339 time like 2026-01-31T12:00:00Z, not {text[:64]!r}")
    day, clock, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # Go sends nanoseconds; Python keeps microseconds
    try:
        value = dt.datetime.fromisoformat(f"{day}T{clock}{fraction}{'+00:00' if zone in 'Zz' else zone}")
        if value.year == _ZERO_YEAR:
            return None  # Go's zero time: not set
        return value.astimezone(dt.UTC)
    except (ValueError, OverflowError) as error:
        raise Invalid(_path(where, name), f"is not a valid time: {error}") from None


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)

"""The links a page carries: the policy's tools (Grafana, Prometheus, Loki...) filled in for one Incident.

A policy lists ``links`` with URL templates; ``{namespace}``, ``{alertname}``... are replaced by
the Incident's values, URL-encoded, so a hostile label cannot change where a link points. The
alert's own links (its ``runbook_url`` annotation, ``generatorURL``, Alertmanager's
``externalURL``) are kept only when they are plain http(s) URLs.
"""

import re
import urllib.parse

from oncall_operator.api import incident, policy

PLACEHOLDERS = (
    "namespace",
    "name",
    "alertname",
    "severity",
    "targetKind",
    "targetNamespace",
    "targetName",
)
_FIELD = re.compile(r"\{([^{}]*)\}")
_SAFE_URL = re.compile(r"^https?://[^\s<>|\"'`]+$")

Link = tuple[str, str]
"""(text, url)"""


def unknown_placeholders(template: str) -> list[str]:
    return [f"{{{f}}}" for f in _FIELD.findall(template) if f not in PLACEHOLDERS]


def safe_url(url: str) -> str | None:
    """``url`` when it is a plain http(s) URL (no spaces, quotes or Slack's ``<>|``), else None."""
    text = url.strip()
    return text if len(text) <= 2048 and _SAFE_URL.match(text) else None


def values(inc: incident.Incident) -> dict[str, str]:
    spec = inc.spec
    return {
        "namespace": inc.metadata.namespace,
        "name": inc.metadata.name,
        "alertname": spec.source.alert_name or "",
        "severity": spec.severity.value,
        "targetKind": spec.target.kind,
        "targetNamespace": spec.target.namespace,
        "targetName": spec.target.name,
    }


def expand(template: str, fields: dict[str, str]) -> str:
    """The template with each known placeholder replaced by its URL-encoded value (unknown ones stay)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return urllib.parse.quote(fields[name], safe="") if name in fields else match.group(0)

    return _FIELD.sub(fill, template)


def for_incident(spec: policy.EscalationPolicySpec | None, inc: incident.Incident) -> list[Link]:
    """The alert's runbook, expression and Alertmanager, then the policy's tools, each a safe URL."""
    source = inc.spec.source
    out: list[Link] = []
    for text, url in (
        ("Runbook", source.annotations.get("runbook_url", "")),
        ("Alert expression", source.generator_url),
        ("Alertmanager", source.external_url),
    ):
        if url and (safe := safe_url(url)):
            out.append((text, safe))
    fields = values(inc)
    for link in spec.links if spec else []:
        if safe := safe_url(expand(link.url, fields)):
            out.append((link.name, safe))
    return out

"""Tenancy and trust: what an object of one namespace may make the operator do, and where it may send.

The operator holds cluster-wide write power, and anyone who can create an Incident, a Runbook
or an EscalationPolicy in their own namespace steers it. So an object acts only inside its own
namespace: an Incident's ``spec.target`` is in the Incident's namespace; ``runbookRef`` and
``escalationPolicyRef`` name an object of the Incident's namespace or of the operator's (the
defaults an administrator wrote), never another tenant's. A channel reads only Secrets of its
policy's namespace that opt in (label ``oncall.dev/notifier: "true"``), and sends credentials
only to allowed places: PagerDuty endpoints and SMTP hosts on the operator's allowlists.

Pure: every function answers with a refusal text (None when allowed), so the same rule reports
``Ready=False`` (:mod:`.checks`) and refuses at act or send time (the executor).
"""

import dataclasses
import ipaddress
import urllib.parse

from oncall_operator.api import base, policy

NOTIFIER_LABEL = "oncall.dev/notifier"
"""A Secret a channel may read carries this label with the value "true"."""
FEATURE_FLAGS_LABEL = "oncall.dev/feature-flags"
"""A ConfigMap ``setFeatureFlag`` may write carries this label with the value "true"."""
PAGERDUTY_ENDPOINTS = ("https://events.pagerduty.com", "https://events.eu.pagerduty.com")
API_ENDPOINTS = ("https://api.twilio.com", "https://slack.com")
"""Where a Twilio or Slack bot channel's ``endpoint`` may point by default: the providers' own APIs."""
"""PagerDuty's US and EU Events API origins: the default allowlist."""


class Refused(ValueError):
    """A channel or an action the tenancy rules refuse; the text says which rule and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Trust:
    """The operator-wide settings of these rules (``ONCALL_PAGERDUTY_ENDPOINTS``, ``ONCALL_SMTP_HOSTS``)."""

    operator_namespace: str = "oncall-system"
    pagerduty_endpoints: tuple[str, ...] = PAGERDUTY_ENDPOINTS
    """Allowed origins, ``scheme://host`` (default port) or ``scheme://host:port`` or ``scheme://host:*``."""
    smtp_hosts: tuple[str, ...] = ()
    """Allowed SMTP relays, ``host`` (any port) or ``host:port``; empty: no Email channel may send."""
    api_endpoints: tuple[str, ...] = API_ENDPOINTS
    """Allowed origins of a Twilio or Slack bot channel's ``endpoint``, as for PagerDuty."""


def target_refusal(incident_namespace: str, target_namespace: str) -> str | None:
    """An Incident acts only on its own namespace: an empty target namespace means its own."""
    if not target_namespace or target_namespace == incident_namespace:
        return None
    return (
        f"spec.target.namespace: {target_namespace!r} is not the Incident's namespace {incident_namespace!r}; "
        "an Incident acts only inside its own namespace"
    )


def ref_refusal(field: str, own_namespace: str, ref_namespace: str | None, operator_namespace: str) -> str | None:
    """A reference stays in the object's namespace or names the operator's (the defaults), never another's."""
    if not ref_namespace or ref_namespace in (own_namespace, operator_namespace):
        return None
    return (
        f"{field}: namespace {ref_namespace!r} is another tenant's; a reference names this namespace "
        f"or the operator's ({operator_namespace!r})"
    )


def ref_namespace(own_namespace: str, ref: base.ObjectRef, operator_namespace: str) -> str | None:
    """Where ``ref`` points, or None when it crosses into another tenant's namespace."""
    where = ref.namespace or own_namespace
    return where if ref_refusal("", own_namespace, ref.namespace, operator_namespace) is None else None


def secret_refusal(name: str, labels: dict[str, str] | None) -> str | None:
    """A channel reads a Secret only when the Secret opts in: its writer chose to hand it to notifiers."""
    if (labels or {}).get(NOTIFIER_LABEL) == "true":
        return None
    return f'Secret {name!r} is not labelled {NOTIFIER_LABEL}: "true"; the operator reads only Secrets that opt in'


def flag_store_refusal(name: str, labels: dict[str, str] | None) -> str | None:
    """``setFeatureFlag`` writes only ConfigMaps labelled as feature-flag stores."""
    if (labels or {}).get(FEATURE_FLAGS_LABEL) == "true":
        return None
    return f'ConfigMap {name!r} is not labelled {FEATURE_FLAGS_LABEL}: "true"; only flag stores are written'


def _host(text: str) -> str | None:
    """``text`` as a lower-case ASCII host name, or None (unicode lookalikes, empty labels, bad characters)."""
    if not text or not text.isascii():
        return None
    host = text.lower().rstrip(".") if not text.startswith("[") else text.lower()
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host
    except ValueError:
        pass
    labels = host.split(".")
    ok = all(0 < len(label) <= 63 and label.replace("-", "").isalnum() for label in labels)
    return host if ok and len(host) <= 253 else None


def _port_matches(allowed: str, port: int | None, default: int) -> bool:
    return allowed == "*" or (int(allowed) if allowed else default) == (port or default)


def endpoint_refusal(
    url: str, allowed: tuple[str, ...], what: str = "PagerDuty", setting: str = "ONCALL_PAGERDUTY_ENDPOINTS"
) -> str | None:
    """An endpoint is on the allowlist by scheme, host and port (no user info, no lookalike host)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return f"endpoint {url!r} is not a valid URL"
    host = _host(parts.hostname or "")
    if (
        host is None
        or parts.username is not None
        or parts.password is not None
        or parts.scheme not in ("http", "https")
    ):
        return f"endpoint {url!r} is not an http(s) URL with a plain host name"
    default = 443 if parts.scheme == "https" else 80
    for entry in allowed:
        scheme, _, rest = entry.partition("://")
        a_host, _, a_port = rest.rstrip("/").rpartition(":") if rest.count(":") == 1 else (rest.rstrip("/"), "", "")
        if scheme == parts.scheme and _host(a_host) == host and _port_matches(a_port, port, default):
            return None
    scheme_note = "" if parts.scheme == "https" else " (and is not https)"
    return (
        f"endpoint {url!r} is not on the operator's {what} allowlist{scheme_note}: "
        f"{', '.join(allowed) or '(empty)'} ({setting})"
    )


def smtp_refusal(host: str, port: int, allowed: tuple[str, ...]) -> str | None:
    """An SMTP relay is on the allowlist (``host`` or ``host:port``); an empty allowlist allows none."""
    name = _host(host)
    if name is not None:
        for entry in allowed:
            a_host, _, a_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if _host(a_host) == name and (not a_port or a_port == "*" or a_port == str(port)):
                return None
    return (
        f"smtpHost {host!r} port {port} is not on the operator's SMTP allowlist: "
        f"{', '.join(allowed) or '(empty: no Email channel may send)'} (ONCALL_SMTP_HOSTS)"
    )


def channel_refusal(channel: policy.Channel, trust: Trust) -> str | None:
    """Whether ``channel`` may send where it says (Secrets are judged when read: :func:`secret_refusal`)."""
    if channel.type == policy.ChannelType.PAGER_DUTY and channel.endpoint:
        return endpoint_refusal(channel.endpoint, trust.pagerduty_endpoints)
    if channel.type in (policy.ChannelType.TWILIO, policy.ChannelType.SLACK_BOT) and channel.endpoint:
        return endpoint_refusal(channel.endpoint, trust.api_endpoints, "Twilio/Slack API", "ONCALL_API_ENDPOINTS")
    if channel.type == policy.ChannelType.EMAIL and channel.email is not None:
        return smtp_refusal(channel.email.smtp_host, channel.email.smtp_port, trust.smtp_hosts)
    return None

"""PagerDuty webhooks (v3): an acknowledgement or resolution made in PagerDuty, read back.

A page through PagerDuty is an alert of the person's own (dedup key
``oncall.dev/<namespace>/<name>/<person>``, :func:`.notices.person_dedup_key`); PagerDuty
turns it into an incident whose ``incident_key`` is that dedup key. A webhook subscription
posts ``incident.acknowledged`` and ``incident.resolved`` events, signed: ``X-PagerDuty-Signature``
lists one or more ``v1=<hex HMAC-SHA256 of the raw body>`` (one per secret while a secret is
rotated). Pure: the caller passes the secret.
"""

import dataclasses
import hashlib
import hmac
import json

from oncall_operator.domain import answer_links, notices

BODY_MAX = 256 * 1024
ACTIONS = {"incident.acknowledged": "ack", "incident.resolved": "resolve"}


@dataclasses.dataclass(frozen=True)
class Event:
    """An acknowledgement or resolution in PagerDuty of one of our alerts."""

    action: str
    """``ack`` or ``resolve``."""
    namespace: str
    name: str
    person_key: str
    """The :func:`.people.person_key` of whose alert it was ('' for the Incident's own alert)."""
    agent: str
    """Who did it in PagerDuty (the agent's summary: their name), '' when PagerDuty did not say."""


def signature(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, header: str | None, body: bytes) -> None:
    """Raises :class:`.answer_links.RequestRefused` (401) unless a ``v1=`` signature in the header is ``body``'s."""
    if not header:
        raise answer_links.RequestRefused(401, "X-PagerDuty-Signature is required")
    expected = signature(secret, body).encode()
    given = [s.strip() for s in header.split(",")[:10]]
    if not any(hmac.compare_digest(s.encode(), expected) for s in given if s.startswith("v1=")):
        raise answer_links.RequestRefused(401, "no X-PagerDuty-Signature matches the subscription's secret")


def parse(body: bytes) -> Event | None:
    """The event when it is an acknowledgement or resolution of one of our alerts; None otherwise.

    Raises :class:`.answer_links.RequestRefused` (400) for a body that is not a v3 webhook payload.
    """
    try:
        event = json.loads(body.decode("utf-8"))["event"]
        kind = str(event.get("event_type", ""))
        data = event.get("data") or {}
        agent = event.get("agent") or {}
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise answer_links.RequestRefused(
            400, f"the body is not a PagerDuty v3 webhook payload: {type(error).__name__}"
        ) from None
    if kind not in ACTIONS or not isinstance(data, dict):
        return None
    found = incident_of(str(data.get("incident_key") or ""))
    if found is None:
        return None
    who = str(agent.get("summary", "")) if isinstance(agent, dict) and agent.get("type") == "user_reference" else ""
    return Event(ACTIONS[kind], *found, agent=notices.truncate(" ".join(who.split()), 200))


def incident_of(key: str) -> tuple[str, str, str] | None:
    """(namespace, name, person key) from one of our dedup keys; None for any other key (or a shortened one)."""
    prefix = notices.DEDUP_PREFIX + "/"
    if not key.startswith(prefix) or "~" in key or len(key) > notices.PAGERDUTY_DEDUP_MAX:
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""

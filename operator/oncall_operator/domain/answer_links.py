"""Signed answer links: who may acknowledge, resolve or view which Incident, until when.

Every page carries links to the operator's answer page for the person it was sent to
(``<external URL>/answer/<namespace>/<name>/<token>``). The token says who (the person paged),
what (acknowledge, resolve, view) and until when; an HMAC-SHA256 with the operator's link key
binds it to the Incident's namespace, name and uid, so a link is useless for any other Incident
(another namespace or name, or a deleted and recreated Incident of the same name), and changing
any part of it breaks the signature. Pure: the caller passes the key and ``now``.

A token is ``<action>.<expiry epoch>.<uid prefix>.<person, base64url>.<MAC, base64url>``: short
enough for an SMS, made only of URL-safe characters. The MAC is the first 16 bytes of the
HMAC-SHA256 over the namespace, name, full uid, person, action and expiry.
"""

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import re
import urllib.parse

from oncall_operator.domain import notices

TOKEN_MAX = 600
"""Longer tokens are refused before any work (a person's name is at most 256 characters)."""
KEY_MIN = 16
"""A key shorter than this (bytes) makes no links: the operator says so at start-up."""
TTL = dt.timedelta(hours=24)
"""How long a link acts; a reminder carries fresh ones."""
UID_PREFIX = 8
MAC_BYTES = 16
_DOMAIN = b"oncall.dev/answer/v1"
_PART = re.compile(r"^[A-Za-z0-9_-]*$")


class Action(enum.StrEnum):
    ACKNOWLEDGE = "ack"
    RESOLVE = "resolve"
    VIEW = "view"
    UPDATE = "update"
    """Write a status update into the timeline (the handbook's status-update reminders)."""


CHANGES = frozenset({Action.ACKNOWLEDGE, Action.RESOLVE, Action.UPDATE})
"""Actions a POST carries out; a view token changes nothing."""
_CODE = {Action.ACKNOWLEDGE: "a", Action.RESOLVE: "r", Action.VIEW: "v", Action.UPDATE: "u"}
_ACTION = {v: k for k, v in _CODE.items()}


class Refusal(enum.StrEnum):
    """Why a token does not act; each has the sentence the answer page shows."""

    MALFORMED = "malformed"
    FOREIGN = "foreign"
    FORGED = "forged"
    EXPIRED = "expired"

    @property
    def sentence(self) -> str:
        return {
            Refusal.MALFORMED: "This is not a link the on-call operator made.",
            Refusal.FOREIGN: "This link is for another incident.",
            Refusal.FORGED: "This link's signature does not match: it was changed or made elsewhere.",
            Refusal.EXPIRED: "This link has expired; open the latest message about this incident.",
        }[self]


class RequestRefused(ValueError):
    """An answer from a provider (Slack, PagerDuty, Twilio) that is not theirs (401) or not a payload (400)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Incident:
    """What a token is bound to."""

    namespace: str
    name: str
    uid: str


@dataclasses.dataclass(frozen=True)
class Claim:
    """A verified token: ``person`` may do ``action`` on the Incident until ``expires``."""

    person: str
    action: Action
    expires: dt.datetime


def sign(key: bytes, incident: Incident, person: str, action: Action, expires: dt.datetime) -> str:
    """The token for ``person`` to do ``action`` on ``incident`` until ``expires`` (timezone-aware)."""
    epoch = int(expires.timestamp())
    who = _b64(person.encode())
    return (
        f"{_CODE[action]}.{epoch}.{_uid_prefix(incident.uid)}.{who}.{_b64(_mac(key, incident, person, action, epoch))}"
    )


def verify(key: bytes, token: str, incident: Incident, now: dt.datetime) -> Claim | Refusal:
    """The claim of ``token`` on ``incident`` at ``now``, or why it does not act (constant-time MAC check)."""
    parsed = _parse(token)
    if parsed is None:
        return Refusal.MALFORMED
    action, epoch, prefix, person, mac = parsed
    if not hmac.compare_digest(prefix, _uid_prefix(incident.uid)):
        return Refusal.FOREIGN
    if not hmac.compare_digest(mac, _mac(key, incident, person, action, epoch)):
        return Refusal.FORGED
    expires = dt.datetime.fromtimestamp(epoch, dt.UTC)
    if now >= expires:
        return Refusal.EXPIRED
    return Claim(person, action, expires)


def path(incident: Incident, token: str) -> str:
    """The answer page's path for ``token``: ``/answer/<namespace>/<name>/<token>``."""
    quote = urllib.parse.quote
    return f"/answer/{quote(incident.namespace, safe='')}/{quote(incident.name, safe='')}/{token}"


def links(
    base_url: str, key: bytes, incident: Incident, person: str, now: dt.datetime, label: str = "", update: bool = False
) -> list[notices.Link]:
    """Acknowledge, Resolve and View links for ``person``, valid for :data:`TTL` from ``now``.

    With ``label`` (a message that reaches several people) only the acknowledge link, named for them.
    With ``update`` (a status-update reminder) first a link to the form that writes an update.
    """
    until = now + TTL
    root = base_url.rstrip("/")

    def url(action: Action) -> str:
        return root + path(incident, sign(key, incident, person, action, until))

    if label:
        return [(f"Acknowledge as {label}", url(Action.ACKNOWLEDGE))]
    first = [("Post an update", url(Action.UPDATE))] if update else []
    return [
        *first,
        ("Acknowledge", url(Action.ACKNOWLEDGE)),
        ("Resolve", url(Action.RESOLVE)),
        ("View", url(Action.VIEW)),
    ]


def _parse(token: str) -> tuple[Action, int, str, str, bytes] | None:
    if not token or len(token) > TOKEN_MAX:
        return None
    parts = token.split(".")
    if len(parts) != 5 or not all(_PART.match(p) for p in parts):
        return None
    code, epoch, prefix, who, mac = parts
    if code not in _ACTION or not epoch.isdigit() or len(epoch) > 12 or len(prefix) != UID_PREFIX:
        return None
    try:
        person = _unb64(who).decode("utf-8")
        signature = _unb64(mac)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not person or len(signature) != MAC_BYTES:
        return None
    return _ACTION[code], int(epoch), prefix, person, signature


def _mac(key: bytes, incident: Incident, person: str, action: Action, epoch: int) -> bytes:
    fields = (incident.namespace, incident.name, incident.uid, person, action.value, str(epoch))
    message = _DOMAIN + b"\x00" + b"\x00".join(f.encode() for f in fields)
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def _uid_prefix(uid: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", uid)[:UID_PREFIX].ljust(UID_PREFIX, "0")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

"""Twilio inbound: an SMS reply (``ack``, ``resolve``) and the "press 1" of a page's call.

Twilio signs every request it makes: ``X-Twilio-Signature`` is the base64 HMAC-SHA1, keyed with
the account's auth token, of the full URL it requested followed by each POST parameter's name
and value, sorted by name. The URL is the one Twilio was given, so the operator computes it from
its external URL (``ONCALL_EXTERNAL_URL``) and the path it was asked for.

An SMS page says which Incident it is about (``ns/name``); the person answers from the phone it
reached with ``ack`` or ``resolve``, followed by the Incident's name when more than one open
Incident paged them. A call's TwiML gathers one digit; the gather's ``action`` carries the
signed answer path of the person called, so "1" acknowledges as them. Pure.
"""

import base64
import dataclasses
import hashlib
import hmac
import urllib.parse
import xml.sax.saxutils
from collections.abc import Mapping

from oncall_operator.domain import answer_links

BODY_MAX = 64 * 1024
VOICE_PATH = "/twilio/voice"
SMS_PATH = "/twilio/sms"
VERBS = {"ack": answer_links.Action.ACKNOWLEDGE, "resolve": answer_links.Action.RESOLVE}
_ALIASES = {"ok": "ack", "acknowledge": "ack", "1": "ack", "close": "resolve", "resolved": "resolve"}


@dataclasses.dataclass(frozen=True)
class Reply:
    """An SMS reply: what to do, and to which Incident (``""``: the one open Incident that paged them)."""

    action: answer_links.Action
    incident: str


def signature(token: str, url: str, params: Mapping[str, str]) -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def verify(token: str, url: str, params: Mapping[str, str], given: str | None) -> None:
    """Raises :class:`.answer_links.RequestRefused` (401) unless Twilio signed this URL and these parameters."""
    if not given:
        raise answer_links.RequestRefused(401, "X-Twilio-Signature is required")
    if not hmac.compare_digest(given.strip().encode(), signature(token, url, params).encode()):
        raise answer_links.RequestRefused(401, "X-Twilio-Signature does not match the auth token and this URL")


def form(body: bytes) -> dict[str, str]:
    """The POST parameters (each once); raises :class:`.answer_links.RequestRefused` (400) for anything else."""
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as error:
        raise answer_links.RequestRefused(400, f"the body is not a form: {type(error).__name__}") from None
    return dict(pairs)


def parse_sms(text: str) -> Reply | None:
    """``ack``, ``ACK checkout-down``, ``resolve shop/checkout-down``...; None for anything else."""
    words = text.strip().split()
    if not 1 <= len(words) <= 2:
        return None
    verb = _ALIASES.get(words[0].lower(), words[0].lower())
    if verb not in VERBS:
        return None
    return Reply(VERBS[verb], words[1].strip(".,;").lower() if len(words) == 2 else "")


def message(text: str) -> str:
    """TwiML that answers an SMS with ``text``."""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{_x(text[:600])}</Message></Response>'


def spoken(text: str) -> str:
    """TwiML that says ``text`` and hangs up."""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>{_x(text[:600])}</Say><Hangup/></Response>'


def gather_action(ack_url: str) -> str | None:
    """The ``<Gather action>`` for a page's call: the voice route with the person's signed answer path."""
    base, found, path = ack_url.partition("/answer/")
    if not found:
        return None
    return f"{base}{VOICE_PATH}?answer={urllib.parse.quote(path, safe='/')}"


def _x(text: str) -> str:
    return xml.sax.saxutils.escape(text, {'"': "&quot;"})

"""Slack interactivity: the buttons on a page's Slack message, and the click Slack posts back.

A Slack message about a page carries Acknowledge and Resolve buttons (Block Kit ``actions``,
made by :func:`.notices.slack_payload`);
each button's ``value`` is the signed answer path (``<namespace>/<name>/<token>``, see
:mod:`.answer_links`), so a click names its Incident in a way only the operator could have
written. Slack posts the click to ``/slack/interactions`` as a form field ``payload`` (JSON),
signed with the app's signing secret: ``X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:<timestamp>:<raw body>">`` and ``X-Slack-Request-Timestamp`` within five minutes of now
(older is a replay). Who answered is the Slack user who clicked, mapped to a schedule member by
their Slack member ID, never the token's person. Pure: the caller passes the secret and ``now``.
"""

import dataclasses
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Sequence
from typing import Any

from oncall_operator.domain import answer_links, notices

WINDOW_SECONDS = 300
BODY_MAX = 64 * 1024
ACTION_PREFIX = notices.SLACK_ACTION_PREFIX


@dataclasses.dataclass(frozen=True)
class Click:
    """One button pressed: by whom (Slack user ID), which answer path, and where to update the message."""

    user: str
    value: str
    response_url: str
    blocks: tuple[dict[str, Any], ...] = ()
    """The message's blocks as Slack sent them (to update it in place)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, given: str | None, body: bytes, now: float) -> None:
    """Raises :class:`.answer_links.RequestRefused` (401) unless Slack signed ``body`` within the replay window."""
    if not timestamp or not given:
        raise answer_links.RequestRefused(401, "X-Slack-Request-Timestamp and X-Slack-Signature are required")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise answer_links.RequestRefused(401, "X-Slack-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        raise answer_links.RequestRefused(
            401, "X-Slack-Request-Timestamp is more than five minutes away: a replay, or a clock off"
        )
    if not hmac.compare_digest(given.encode(), signature(secret, timestamp, body).encode()):
        raise answer_links.RequestRefused(401, "X-Slack-Signature does not match the signing secret")


def parse(body: bytes) -> Click | None:
    """The click in a signed body; None for an interaction that is not one of our buttons (nothing to do).

    Raises :class:`.answer_links.RequestRefused` (400) for a body that is not an interaction payload at all.
    """
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), max_num_fields=10)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError) as error:
        raise answer_links.RequestRefused(
            400, f"the body is not a Slack interaction payload: {type(error).__name__}"
        ) from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    user = payload.get("user")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict) or not isinstance(user, dict):
        raise answer_links.RequestRefused(400, "block_actions without actions or user")
    action = actions[0]
    if not str(action.get("action_id", "")).startswith(ACTION_PREFIX):
        return None
    message = payload.get("message")
    blocks = message.get("blocks") if isinstance(message, dict) else None
    return Click(
        user=str(user.get("id", ""))[:64],
        value=str(action.get("value", ""))[:2000],
        response_url=str(payload.get("response_url", ""))[:2048],
        blocks=tuple(b for b in blocks[:50] if isinstance(b, dict)) if isinstance(blocks, list) else (),
    )


def answered(blocks: Sequence[dict[str, Any]], text: str) -> dict[str, Any]:
    """The message update for ``response_url``: the same blocks without the buttons, and who answered."""
    kept = [b for b in blocks if b.get("type") != "actions"][:48]
    said = {"type": "context", "elements": [{"type": "mrkdwn", "text": notices.truncate(text, 3000)}]}
    return {"replace_original": True, "text": notices.truncate(text, 3000), "blocks": [*kept, said]}

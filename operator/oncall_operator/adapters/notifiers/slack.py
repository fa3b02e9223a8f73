"""Slack through an incoming webhook: the Secret holds the webhook URL, which is itself the credential.

Slack answers 200 ``ok``, or an error word in plain text (``invalid_payload``, ``no_service``
for a revoked URL, ``channel_is_archived`` ...) that goes into the Delivery's detail with a
hint. Incoming webhooks cannot update a posted message, so an acknowledgement or resolution
is a new message in the same channel.
"""

from collections.abc import Mapping
from typing import Any

from oncall_operator.adapters.notifiers import base
from oncall_operator.domain import notices

HINTS: Mapping[str, str] = {
    "invalid_payload": "Slack could not read the message",
    "no_service": "the webhook URL is revoked or wrong",
    "no_active_hooks": "the webhook is disabled",
    "invalid_token": "the webhook URL is revoked or wrong",
    "channel_not_found": "the webhook's channel no longer exists",
    "channel_is_archived": "the webhook's channel is archived",
    "action_prohibited": "a workspace admin restricted posting to the channel",
    "posting_to_general_channel_denied": "only admins may post to that channel",
    "too_many_attachments": "the message has too many attachments",
}


class SlackSender(base.HttpSender):
    def body(self, notice: notices.Notice) -> dict[str, Any]:
        return notices.slack_payload(notice)

    def judge(self, status: int, text: str, headers: Mapping[str, str]) -> base.Outcome:
        outcome = super().judge(status, text, headers)
        hint = HINTS.get(text.strip())
        if hint and not outcome.ok:
            return base.Outcome(outcome.ok, f"{outcome.detail} ({hint})", outcome.retryable, outcome.retry_after)
        return outcome

"""Notifiers: Slack (webhook or bot), PagerDuty, email, Twilio SMS/voice and a webhook, behind one ``send``.

The executor reads a channel's Secret, asks :func:`sender_for` for a sender, and hands a
:class:`~oncall_operator.domain.notices.Notice` to :func:`send_all` for every channel that
should hear it. Each channel gets a :class:`Delivery` (ok or not, attempts, a detail for the
Incident's timeline); one failing or hanging channel never holds up or cancels the others.
Payloads are rendered by the pure :mod:`oncall_operator.domain.notices`.
"""

import asyncio
import random
import ssl

import aiohttp

from oncall_operator.adapters.notifiers import pagerduty, slackbot, smtp, twilio
from oncall_operator.adapters.notifiers.base import (
    DEFAULT_POLICY,
    Delivery,
    HttpSender,
    Outcome,
    Random,
    RetryPolicy,
    Sender,
    Sleep,
    Unusable,
    http_url,
    send_all,
)
from oncall_operator.adapters.notifiers.pagerduty import PagerDutySender
from oncall_operator.adapters.notifiers.slack import SlackSender
from oncall_operator.adapters.notifiers.slackbot import SlackBotSender
from oncall_operator.adapters.notifiers.smtp import SmtpSender
from oncall_operator.adapters.notifiers.twilio import TwilioSender
from oncall_operator.adapters.notifiers.webhook import WebhookSender
from oncall_operator.api import policy as api_policy

__all__ = [
    "DEFAULT_POLICY",
    "Delivery",
    "HttpSender",
    "Outcome",
    "PagerDutySender",
    "Random",
    "RetryPolicy",
    "Sender",
    "SlackBotSender",
    "SlackSender",
    "Sleep",
    "SmtpSender",
    "TwilioSender",
    "Unusable",
    "WebhookSender",
    "send_all",
    "sender_for",
]


def sender_for(
    channel: api_policy.Channel,
    secret_value: str | None,
    session: aiohttp.ClientSession,
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Sleep = asyncio.sleep,
    rand: Random = random.random,
    pagerduty_url: str = pagerduty.EVENTS_URL,
    smtp_tls: ssl.SSLContext | None = None,
    method: str = "",
) -> Sender:
    """The sender for a spec channel, given its Secret's value (already read; None when there is none).

    Never raises for a bad configuration: it returns an :class:`Unusable` sender whose Delivery
    says what to fix, so a misconfigured channel shows up in the timeline like any other failure.
    ``method`` is a person's contact method: ``Voice`` calls through a Twilio channel (else an SMS),
    ``Slack`` sends a SlackBot channel's message to the person's DM (else to its channel, if it names one).
    """
    name = channel.name
    ref = channel.secret_ref
    where = f"Secret {ref.name!r} key {ref.key!r}" if ref else "the Secret"
    if channel.type == api_policy.ChannelType.EMAIL:
        if channel.email is None:
            return Unusable(name, "an Email channel needs 'email' settings")
        try:
            return SmtpSender(name, channel.email, secret_value, tls=smtp_tls, policy=policy, sleep=sleep, rand=rand)
        except smtp.ConfigError as error:
            return Unusable(name, f"{error} ({where})")
    if not secret_value or not secret_value.strip():
        return Unusable(name, f"no value in {where}: a {channel.type.value} channel needs one")
    if channel.type == api_policy.ChannelType.PAGER_DUTY:
        return PagerDutySender(
            name, secret_value.strip(), session, url=pagerduty_url, policy=policy, sleep=sleep, rand=rand
        )
    if channel.type == api_policy.ChannelType.TWILIO:
        if channel.twilio is None:
            return Unusable(name, "a Twilio channel needs 'twilio' settings")
        try:
            return TwilioSender(
                name,
                secret_value,
                channel.twilio.sender,
                session,
                voice=method == "Voice",
                url=channel.endpoint or twilio.API_URL,
                policy=policy,
                sleep=sleep,
                rand=rand,
            )
        except twilio.ConfigError as error:
            return Unusable(name, f"{error} ({where})")
    if channel.type == api_policy.ChannelType.SLACK_BOT:
        if not secret_value.strip().startswith("xox"):
            return Unusable(name, f"the value in {where} is not a Slack token (xoxb-...)")
        to = None if method == "Slack" or channel.slack_bot is None else channel.slack_bot.channel
        api = channel.endpoint or slackbot.API_URL
        return SlackBotSender(name, secret_value, session, to=to, url=api, policy=policy, sleep=sleep, rand=rand)
    url = http_url(secret_value)
    if url is None:
        return Unusable(name, f"the value in {where} is not an http(s) URL")
    if channel.type == api_policy.ChannelType.SLACK:
        return SlackSender(name, url, session, policy=policy, sleep=sleep, rand=rand)
    return WebhookSender(name, url, session, policy=policy, sleep=sleep, rand=rand)

"""The answer links a page carries for the person it reaches, signed with the operator's link key.

Shared by the escalation's sends (:mod:`.delivering`) and the answer page (:mod:`.answering`):
both need the key (``ONCALL_LINK_KEY_SECRET``, in the operator's namespace) and the external
base URL (``ONCALL_EXTERNAL_URL``). Without either, or while the key cannot be read, messages
carry no answer links: a page is never held up or lost for want of a link.
"""

import asyncio
import datetime as dt
import logging

import kubernetes
import urllib3

from oncall_operator.adapters import answers, intake
from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import incident, schedule
from oncall_operator.domain import answer_links, tenancy
from oncall_operator.executor import context

log = logging.getLogger(__name__)


def bound(inc: incident.Incident) -> answer_links.Incident:
    """What a token for ``inc`` is bound to."""
    return answer_links.Incident(inc.metadata.namespace, inc.metadata.name, inc.metadata.uid)


async def key(ctx: context.Context) -> bytes | None:
    """The link key; None when answer links are off. Raises :class:`intake.Unavailable` when unreadable now."""
    if ctx.link_key is None:
        return None
    return await ctx.link_key.value()


async def person_links(ctx: context.Context, inc: incident.Incident, now: dt.datetime) -> dispatch.PersonLinks | None:
    """How to make one recipient's links for ``inc``; None when links are off or the key is unreadable now."""
    try:
        secret = await key(ctx)
    except intake.Unavailable as error:
        log.warning(
            "Incident %s/%s: pages go without answer links: %s", inc.metadata.namespace, inc.metadata.name, error
        )
        return None
    base_url = ctx.config.external_url
    if secret is None or not base_url or not inc.metadata.uid:
        return None
    target = bound(inc)

    def make(person: schedule.Member, label: str, update: bool) -> list[tuple[str, str]]:
        return answer_links.links(base_url, secret, target, person.name, now, label, update)

    return make


KEY_NAME = "key"
"""The key of the link Secret's value (the chart's ``<fullname>-links`` Secret)."""


def link_key(ctx: context.Context) -> answers.LinkKey | None:
    """The link key's reader, or None (said once in the log) when links are not configured."""
    cfg = ctx.config
    if not cfg.link_key_secret or not cfg.external_url:
        log.info("answer links are off: set ONCALL_LINK_KEY_SECRET and ONCALL_EXTERNAL_URL to send them")
        return None

    async def read() -> str | None:
        try:
            value: str | None = await asyncio.to_thread(
                ctx.kube.secret_value, cfg.namespace, cfg.link_key_secret, KEY_NAME
            )
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise intake.Unavailable(f"Secret {cfg.namespace}/{cfg.link_key_secret} not readable: {error}") from error
        return value

    return answers.LinkKey(read)


def notifier_secret(ctx: context.Context, name: str, key: str) -> answers.SecretText:
    """A value from an opted-in Secret in the operator's namespace (cached 30 s); None when ``name`` is empty."""
    cfg = ctx.config

    async def read() -> str | None:
        if not name:
            return None
        try:
            value: str | None = await asyncio.to_thread(ctx.secrets.value, cfg.namespace, name, key)
        except (tenancy.Refused, kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise intake.Unavailable(f"Secret {cfg.namespace}/{name}: {error}") from error
        return value.strip() if value else None

    return read


def slack_secret(ctx: context.Context) -> answers.SecretText:
    """The Slack app's signing secret (key ``signingSecret``)."""
    return notifier_secret(ctx, ctx.config.slack_signing_secret, "signingSecret")


def pagerduty_secret(ctx: context.Context) -> answers.SecretText:
    """The PagerDuty webhook subscription's secret (key ``webhookSecret``)."""
    return notifier_secret(ctx, ctx.config.pagerduty_webhook_secret, "webhookSecret")


def twilio_secret(ctx: context.Context) -> answers.SecretText:
    """The Twilio account's auth token (key ``authToken``); None without an external URL to check signatures by."""
    read = notifier_secret(ctx, ctx.config.twilio_auth_secret, "authToken")

    async def token() -> str | None:
        return await read() if ctx.config.external_url else None

    return token

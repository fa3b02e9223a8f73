"""PagerDuty through the Events API v2: the Secret holds the integration's routing key.

Every event about one Incident carries its ``dedup_key``, so PagerDuty keeps one alert per
Incident: pages and reminders are triggers (deduplicated), then acknowledge and resolve.
PagerDuty answers 202 when it queued the event, 400 ``invalid event`` with a list of errors
(not retried: the detail quotes them), 429 when rate limited and 5xx when it has trouble
(both retried).
"""

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import aiohttp

from oncall_operator.adapters.notifiers import base
from oncall_operator.domain import notices

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
"""The US service region; EU accounts use https://events.eu.pagerduty.com/v2/enqueue."""


class PagerDutySender(base.HttpSender):
    def __init__(
        self,
        channel: str,
        routing_key: str,
        session: aiohttp.ClientSession,
        *,
        url: str = EVENTS_URL,
        policy: base.RetryPolicy = base.DEFAULT_POLICY,
        sleep: base.Sleep = asyncio.sleep,
        rand: base.Random = random.random,
    ) -> None:
        super().__init__(channel, url, session, policy=policy, sleep=sleep, rand=rand)
        self.routing_key = routing_key

    def body(self, notice: notices.Notice) -> dict[str, Any]:
        return notices.pagerduty_event(notice, self.routing_key)

    def judge(self, status: int, text: str, headers: Mapping[str, str]) -> base.Outcome:
        outcome = super().judge(status, text, headers)
        answer = base.json_object(text)
        if answer is None:
            return outcome
        parts = [str(answer.get(k)) for k in ("status", "message") if answer.get(k)]
        errors = answer.get("errors")
        if isinstance(errors, list) and errors:
            parts.append("; ".join(str(e) for e in errors))
        if outcome.ok and answer.get("dedup_key"):
            parts.append(f"dedup_key {answer['dedup_key']}")
        if not parts:
            return outcome
        detail = f"HTTP {status}: " + ": ".join(parts)
        if status == 429:
            detail += " (rate limited)"
        return base.Outcome(outcome.ok, detail, outcome.retryable, outcome.retry_after)

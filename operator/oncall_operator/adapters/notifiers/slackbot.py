"""Slack through the Web API with a bot token: ``chat.postMessage`` to a person's DM or to a channel.

The Secret holds the bot token (``xoxb-...``), sent as ``Authorization: Bearer``; the body is the
same Block Kit message as the webhook's plus ``channel``: a person's member ID (Slack opens the
app's DM with them, so the page reaches their phone) or the channel's ID. Slack answers HTTP
200 with ``{"ok": false, "error": ...}`` for most failures: ``invalid_auth``, ``channel_not_found``,
``not_in_channel`` are not retried; ``ratelimited`` (HTTP 429 with Retry-After) and Slack's own
trouble are. The app needs the ``chat:write`` scope (and ``im:write`` for DMs).
"""

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import aiohttp

from oncall_operator.adapters.notifiers import base
from oncall_operator.domain import notices

API_URL = "https://slack.com/api"
RETRYABLE = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


class SlackBotSender(base.HttpSender):
    def __init__(
        self,
        channel: str,
        token: str,
        session: aiohttp.ClientSession,
        *,
        to: str | None = None,
        url: str = API_URL,
        policy: base.RetryPolicy = base.DEFAULT_POLICY,
        sleep: base.Sleep = asyncio.sleep,
        rand: base.Random = random.random,
    ) -> None:
        super().__init__(channel, f"{url.rstrip('/')}/chat.postMessage", session, policy=policy, sleep=sleep, rand=rand)
        self._token = token.strip()
        self.to = to
        """A channel ID; None: a direct message to the (first) person in the Notice."""

    def _destination(self, notice: notices.Notice) -> str | None:
        if self.to:
            return self.to
        return notice.recipients[0].slack if notice.recipients else None

    def body(self, notice: notices.Notice) -> dict[str, Any]:
        return {"channel": self._destination(notice) or "", "unfurl_links": False, **notices.slack_payload(notice)}

    def headers(self, notice: notices.Notice) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def attempt(self, notice: notices.Notice, timeout: float) -> base.Outcome:
        if self._destination(notice) is None:
            who = f"{notice.recipients[0].name} has no Slack member ID" if notice.recipients else "nobody to message"
            return base.Outcome(False, f"{who}, and the channel names no Slack channel")
        return await super().attempt(notice, timeout)

    def judge(self, status: int, text: str, headers: Mapping[str, str]) -> base.Outcome:
        outcome = super().judge(status, text, headers)
        answer = base.json_object(text)
        if answer is None or not outcome.ok:
            return outcome
        if answer.get("ok") is True:
            return base.Outcome(
                True, f"HTTP {status}: posted to {answer.get('channel', '?')} at {answer.get('ts', '?')}"
            )
        error = str(answer.get("error") or "unknown_error")
        return base.Outcome(False, f"HTTP {status}: {error}", retryable=error in RETRYABLE)


class WarRoomSender(base.Sender):
    """Opens the war room: ``conversations.create`` (``inc-<name>``), ``conversations.invite`` the people
    paged (their member IDs), then ``chat.postMessage`` the incident there. The app also needs the
    ``channels:manage`` scope. A retry after the channel was created goes on with that channel.
    """

    def __init__(
        self,
        channel: str,
        token: str,
        session: aiohttp.ClientSession,
        *,
        room: str,
        url: str = API_URL,
        policy: base.RetryPolicy = base.DEFAULT_POLICY,
        sleep: base.Sleep = asyncio.sleep,
        rand: base.Random = random.random,
    ) -> None:
        super().__init__(channel, policy=policy, sleep=sleep, rand=rand)
        self.room = room
        self.opened: str | None = None
        self._api = url.rstrip("/")
        self._post = SlackBotSender(channel, token, session, url=url, policy=policy, sleep=sleep, rand=rand)
        self._token = token.strip()
        self._session = session

    async def _call(self, method: str, body: dict[str, Any]) -> tuple[base.Outcome, dict[str, Any]]:
        headers = {"User-Agent": base.USER_AGENT, "Authorization": f"Bearer {self._token}"}
        try:
            async with self._session.post(
                f"{self._api}/{method}", json=body, headers=headers, allow_redirects=False, raise_for_status=False
            ) as response:
                text = (await response.content.read(base.RESPONSE_MAX)).decode("utf-8", "replace")
                status, answer_headers = response.status, response.headers
        except aiohttp.ClientError as error:
            return base.Outcome(False, f"{method}: connection failed: {type(error).__name__}", retryable=True), {}
        outcome = self._post.judge(status, text, answer_headers)
        answer = base.json_object(text) or {}
        return base.Outcome(outcome.ok, f"{method}: {outcome.detail}", outcome.retryable, outcome.retry_after), answer

    async def attempt(self, notice: notices.Notice, timeout: float) -> base.Outcome:
        if self.opened is None:
            outcome, answer = await self._call("conversations.create", {"name": self.room, "is_private": False})
            found = answer.get("channel")
            if not outcome.ok or not isinstance(found, dict) or not isinstance(found.get("id"), str):
                return outcome
            self.opened = found["id"]
        notes = []
        members = ",".join(m.slack for m in notice.recipients if m.slack)
        if members:
            invited, _ = await self._call("conversations.invite", {"channel": self.opened, "users": members})
            if not invited.ok:
                notes.append(f"; {invited.detail}")  # the room exists and is posted to: not worth failing the step
        self._post.to = self.opened
        posted = await self._post.attempt(notice, timeout)
        detail = f"opened #{self.room} ({self.opened}), invited {members or 'nobody'}; {posted.detail}{''.join(notes)}"
        return base.Outcome(posted.ok, detail, posted.retryable, posted.retry_after)

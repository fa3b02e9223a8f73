"""SMS and voice calls through Twilio's REST API: the Secret holds ``AccountSid:AuthToken``.

Each person is reached at their own ``phone``: an SMS is a POST of ``To``, ``From`` and ``Body``
(:func:`~oncall_operator.domain.phone.sms_text`) to ``/2010-04-01/Accounts/{AccountSid}/Messages.json``;
a call posts ``To``, ``From`` and inline ``Twiml`` (:func:`~oncall_operator.domain.phone.twiml`) to
``.../Calls.json``. Both are form-encoded with HTTP basic auth (AccountSid:AuthToken). Twilio
answers 201 with the new resource's ``sid``, or an error object (``code``, ``message``,
``more_info``) that goes into the detail: 4xx are not retried, 429 and 5xx are.
"""

import asyncio
import base64
import random
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from oncall_operator.adapters.notifiers import base
from oncall_operator.domain import notices, phone

API_URL = "https://api.twilio.com"
_SID = re.compile(r"^AC[0-9a-zA-Z]{32}$")


class ConfigError(ValueError):
    """The channel's Secret cannot work; the message says what to fix (never the token)."""


def parse_credentials(secret_value: str) -> tuple[str, str]:
    """``AccountSid:AuthToken`` (a trailing newline dropped)."""
    sid, sep, token = secret_value.strip().partition(":")
    if not sep or not _SID.match(sid) or not token:
        raise ConfigError("the Twilio Secret value must be 'AccountSid:AuthToken' (the SID starts with AC, 34 chars)")
    return sid, token


class TwilioSender(base.HttpSender):
    def __init__(
        self,
        channel: str,
        credentials: str,
        sender: str,
        session: aiohttp.ClientSession,
        *,
        voice: bool = False,
        url: str = API_URL,
        policy: base.RetryPolicy = base.DEFAULT_POLICY,
        sleep: base.Sleep = asyncio.sleep,
        rand: base.Random = random.random,
    ) -> None:
        self.sid, self._token = parse_credentials(credentials)
        resource = "Calls" if voice else "Messages"
        endpoint = f"{url.rstrip('/')}/2010-04-01/Accounts/{self.sid}/{resource}.json"
        super().__init__(channel, endpoint, session, policy=policy, sleep=sleep, rand=rand)
        self.sender = sender
        self.voice = voice

    def body(self, notice: notices.Notice) -> dict[str, Any]:
        to = notice.recipients[0].phone if notice.recipients else None
        form = {"To": to or "", "From": self.sender}
        if self.voice:
            form["Twiml"] = phone.twiml(notice)
        else:
            form["Body"] = phone.sms_text(notice)
        return form

    def request(self, notice: notices.Notice) -> dict[str, Any]:
        return {"data": self.body(notice)}

    def headers(self, notice: notices.Notice) -> dict[str, str]:
        basic = base64.b64encode(f"{self.sid}:{self._token}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}

    async def attempt(self, notice: notices.Notice, timeout: float) -> base.Outcome:
        if not notice.recipients or not notice.recipients[0].phone:
            who = notice.recipients[0].name if notice.recipients else None
            return base.Outcome(False, f"{who} has no phone number" if who else "nobody to text or call")
        return await super().attempt(notice, timeout)

    def judge(self, status: int, text: str, headers: Mapping[str, str]) -> base.Outcome:
        outcome = super().judge(status, text, headers)
        answer = base.json_object(text)
        if answer is None:
            return outcome
        if outcome.ok:
            what = "call" if self.voice else "SMS"
            return base.Outcome(
                True, f"HTTP {status}: {what} {answer.get('sid', '')} {answer.get('status', '')}".strip()
            )
        parts = [f"HTTP {status}"] + [str(answer[k]) for k in ("code", "message", "more_info") if answer.get(k)]
        return base.Outcome(False, ": ".join(parts), outcome.retryable, outcome.retry_after)

"""What every notifier shares: the result type, the retry loop with its deadlines, and fan-out.

A page must reach people even when one channel is down, and a down channel must never hold
the others up or take the operator with it. So every send is bounded twice (each attempt by
``attempt_timeout``, the whole send by ``total_timeout``), transient failures (network errors,
timeouts, HTTP 429 and 5xx, SMTP 4xx) are retried with exponential backoff and jitter, and
permanent ones (any other 4xx, a refused login, an untrusted certificate) are not. The outcome
is always a :class:`Delivery` with a detail a person can act on; ``send`` and :func:`send_all`
never raise (except when the caller itself is cancelled). The sleep and the jitter source are
injectable so tests run the backoff without waiting.
"""

import abc
import asyncio
import dataclasses
import datetime as dt
import email.utils
import json
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp
import yarl

import oncall_operator
from oncall_operator.domain import notices

Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]
_MIN_BUDGET = 0.05
DETAIL_MAX = 512
"""Details end up in the Incident's timeline and notification records; keep them short."""
RESPONSE_MAX = 16384
"""How much of a response body is read: enough for any error message, never a whole page."""
USER_AGENT = f"oncall-operator/{oncall_operator.__version__}"


@dataclasses.dataclass(frozen=True)
class Delivery:
    """How sending one Notice through one channel ended.

    ``retryable`` says whether the last failure was transient (a later send may succeed);
    it is False when ``ok``.
    """

    channel: str
    ok: bool
    attempts: int
    detail: str
    retryable: bool = False

    def describe(self) -> str:
        """One line for the Incident timeline."""
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        if not self.attempts:
            return f"{self.channel}: not sent: {self.detail}"
        if self.ok:
            return f"{self.channel}: delivered ({tries}): {self.detail}"
        later = " (transient)" if self.retryable else ""
        return f"{self.channel}: failed after {tries}: {self.detail}{later}"


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. The defaults keep a dead endpoint from holding a page for more than 20 s."""

    attempts: int = 3
    attempt_timeout: float = 5.0
    total_timeout: float = 20.0
    backoff: float = 0.5
    """The first retry's delay; it doubles per retry up to ``max_backoff``, scaled by a jitter of 50-100 %."""
    max_backoff: float = 8.0
    max_retry_after: float = 10.0
    """A 429's Retry-After is honoured up to this; a longer one ends the send (retryable) instead of waiting."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be >= 1")
        if min(self.attempt_timeout, self.total_timeout) <= 0:
            raise ValueError("RetryPolicy timeouts must be > 0")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

    def delay(self, retry: int, rand: Random) -> float:
        """The pause before retry number ``retry`` (1 = the second attempt)."""
        base: float = min(self.max_backoff, self.backoff * 2.0 ** (retry - 1))
        return base * (0.5 + 0.5 * rand())


DEFAULT_POLICY = RetryPolicy()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The result of one attempt, as a sender judges it."""

    ok: bool
    detail: str
    retryable: bool = False
    retry_after: float | None = None


class Sender(abc.ABC):
    """Sends Notices through one channel; subclasses implement one :meth:`attempt`."""

    def __init__(
        self,
        channel: str,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Sleep = asyncio.sleep,
        rand: Random = random.random,
    ) -> None:
        self.channel = channel
        self.policy = policy
        self._sleep = sleep
        self._rand = rand

    @abc.abstractmethod
    async def attempt(self, notice: notices.Notice, timeout: float) -> Outcome:
        """Try once. May raise; :meth:`send` bounds it by ``timeout`` and turns exceptions into failures."""

    async def send(self, notice: notices.Notice) -> Delivery:
        """Deliver with retries inside the policy's deadlines. Never raises (except on cancellation)."""
        policy = self.policy
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.total_timeout
        attempts = 0
        detail = ""
        while True:
            budget = min(policy.attempt_timeout, deadline - loop.time())
            if attempts and budget < _MIN_BUDGET:
                detail += f"; no time left for another attempt within the {policy.total_timeout:g}s deadline"
                return Delivery(self.channel, False, attempts, _short(detail), True)
            attempts += 1
            outcome = await self._bounded(notice, budget)
            if outcome.ok:
                return Delivery(self.channel, True, attempts, _short(outcome.detail), False)
            detail = outcome.detail
            if not outcome.retryable:
                return Delivery(self.channel, False, attempts, _short(detail), False)
            if attempts >= policy.attempts:
                return Delivery(self.channel, False, attempts, _short(detail), True)
            pause = policy.delay(attempts, self._rand)
            if outcome.retry_after is not None:
                if outcome.retry_after > policy.max_retry_after:
                    detail += (
                        f"; Retry-After {outcome.retry_after:g}s is longer than the {policy.max_retry_after:g}s we wait"
                    )
                    return Delivery(self.channel, False, attempts, _short(detail), True)
                pause = outcome.retry_after
            if loop.time() + pause >= deadline:
                detail += f"; no time left for another attempt within the {policy.total_timeout:g}s deadline"
                return Delivery(self.channel, False, attempts, _short(detail), True)
            await self._sleep(pause)

    async def _bounded(self, notice: notices.Notice, budget: float) -> Outcome:
        try:
            async with asyncio.timeout(budget):
                return await self.attempt(notice, budget)
        except TimeoutError:
            return Outcome(False, f"timed out after {round(budget, 1):g}s without an answer", retryable=True)
        except Exception as error:  # a bug in one sender must not cost the page on the others
            return Outcome(False, f"unexpected error: {type(error).__name__}: {error}", retryable=False)


class HttpSender(Sender):
    """POSTs one JSON document per attempt; subclasses render the body and judge the answer.

    The URL may itself be a credential (a Slack webhook URL is), so it never appears in a detail.
    """

    def __init__(
        self,
        channel: str,
        url: str,
        session: aiohttp.ClientSession,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Sleep = asyncio.sleep,
        rand: Random = random.random,
    ) -> None:
        super().__init__(channel, policy=policy, sleep=sleep, rand=rand)
        self.url = url
        self._session = session

    @abc.abstractmethod
    def body(self, notice: notices.Notice) -> dict[str, Any]:
        """The JSON document to POST."""

    def headers(self, notice: notices.Notice) -> dict[str, str]:
        return {}

    def judge(self, status: int, text: str, headers: Mapping[str, str]) -> Outcome:
        """2xx is delivered; 408, 429 and 5xx are worth retrying; anything else is refused for good."""
        excerpt = _one_line(text)[:200]
        detail = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if 200 <= status < 300:
            return Outcome(True, detail)
        if status == 429:
            return Outcome(False, detail + " (rate limited)", retryable=True, retry_after=retry_after(headers))
        if status == 408 or status >= 500:
            return Outcome(False, detail, retryable=True)
        if 300 <= status < 400:
            return Outcome(False, detail + " (redirects are not followed)", retryable=False)
        return Outcome(False, detail, retryable=False)

    def request(self, notice: notices.Notice) -> dict[str, Any]:
        """What aiohttp posts: the JSON body by default (a form and basic auth for Twilio)."""
        return {"json": self.body(notice)}

    async def attempt(self, notice: notices.Notice, timeout: float) -> Outcome:
        request = self.request(notice)
        headers = {"User-Agent": USER_AGENT, **self.headers(notice)}
        try:
            async with self._session.post(
                self.url, headers=headers, allow_redirects=False, raise_for_status=False, **request
            ) as response:
                raw = await response.content.read(RESPONSE_MAX)
                status, answer_headers = response.status, response.headers
        except TimeoutError:
            raise
        except aiohttp.InvalidURL:
            return Outcome(False, "the URL from the Secret is not a valid URL", retryable=False)
        except aiohttp.ClientSSLError as error:
            return Outcome(False, self._redact(f"TLS failed: {error}"), retryable=False)
        except aiohttp.ClientError as error:
            return Outcome(False, self._redact(f"connection failed: {type(error).__name__}: {error}"), retryable=True)
        return self.judge(status, raw.decode("utf-8", "replace"), answer_headers)

    def _redact(self, text: str) -> str:
        url = yarl.URL(self.url)
        for secret in (self.url, url.raw_path_qs, url.path_qs):
            if secret not in ("", "/"):
                text = text.replace(secret, "/<redacted>")
        return text


def json_object(text: str) -> dict[str, Any] | None:
    """A provider's answer as a JSON object, or None when it is not one."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def http_url(value: str | None) -> str | None:
    """The Secret's value as an http(s) URL with a host, or None."""
    if not value:
        return None
    text = value.strip()
    try:
        url = yarl.URL(text)
    except (TypeError, ValueError):
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return text


class Unusable(Sender):
    """A channel that cannot work as configured (missing Secret, a value that is no URL): fails at once."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(channel)
        self.reason = reason

    async def attempt(self, notice: notices.Notice, timeout: float) -> Outcome:
        return Outcome(False, self.reason, retryable=False)

    async def send(self, notice: notices.Notice) -> Delivery:
        return Delivery(self.channel, False, 0, _short(self.reason), False)


async def send_all(notice: notices.Notice, senders: Iterable[Sender]) -> list[Delivery]:
    """Send through every channel at once; one Delivery per sender, in order. Never raises.

    A sender that fails, hangs (within its own deadline) or even crashes affects only its own
    Delivery. Cancelling the caller cancels all sends, as asyncio expects.
    """
    targets = list(senders)
    results = await asyncio.gather(*(s.send(notice) for s in targets), return_exceptions=True)
    out: list[Delivery] = []
    for sender, result in zip(targets, results, strict=True):
        if isinstance(result, Delivery):
            out.append(result)
        elif isinstance(result, asyncio.CancelledError):
            out.append(Delivery(sender.channel, False, 0, "cancelled before it finished", True))
        else:
            out.append(Delivery(sender.channel, False, 0, _short(f"sender crashed: {result!r}"), True))
    return out


def _short(text: str) -> str:
    return notices.truncate(text, DETAIL_MAX)


def _one_line(text: str) -> str:
    return " ".join(text.split())

"""The answer routes on the operator's HTTP server: ``/answer/...``, and the providers' signed callbacks.

A signed link from a page opens the answer page (GET, which never changes anything: mail
scanners and chat unfurlers fetch every link they see); only the POST of one of its buttons
acknowledges, resolves or writes a status update. The token in the path is the credential and
the CSRF token at once: a form elsewhere cannot post without knowing it. The routes move bytes
only: :data:`Answer` (the executor's) reads the Incident, checks the token and writes. Every
answer is HTML, with headers that keep it out of caches, frames and referrers.

:class:`LinkKey` is the operator's link key, read from its Secret when first needed and again
every few minutes (a rotated key is picked up; links signed with the old one stop acting).
"""

import asyncio
import collections.abc as cabc
import logging
import time

from aiohttp import web

from oncall_operator.adapters import intake
from oncall_operator.domain import answer_links, answer_page, pagerduty_answers, slack_answers, twilio_answers

log = logging.getLogger(__name__)
FORM_MAX = 16 * 1024
"""A POST's body: a status update and nothing else."""
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}
Answer = cabc.Callable[[str, str, str, str, cabc.Mapping[str, str]], cabc.Awaitable[tuple[int, str]]]
"""(namespace, name, token, method, form) -> (HTTP status, HTML page)."""
SecretText = cabc.Callable[[], cabc.Awaitable[str | None]]
"""A secret's value when asked (None: not configured); raises :class:`intake.Unavailable` when unreadable now."""
OnClick = cabc.Callable[[slack_answers.Click], cabc.Awaitable[cabc.Coroutine[None, None, None] | None]]
"""A click -> what to do after the answer (the message update), if anything."""
OnEvent = cabc.Callable[[pagerduty_answers.Event], cabc.Awaitable[None]]
OnSms = cabc.Callable[[cabc.Mapping[str, str]], cabc.Awaitable[str]]
"""An SMS's parameters (From, Body...) -> the reply text."""
OnVoice = cabc.Callable[[str, str], cabc.Awaitable[str]]
"""(the gather's signed answer path, the digits pressed) -> what to say."""


class LinkKey:
    """The key answer links are signed with, cached for ``refresh_after`` seconds; None when unset or too short."""

    def __init__(self, read: cabc.Callable[[], cabc.Awaitable[str | None]], refresh_after: float = 300.0) -> None:
        self.read, self.refresh_after = read, refresh_after
        self._value: bytes | None = None
        self._read_at: float | None = None

    async def value(self) -> bytes | None:
        """The key; raises :class:`intake.Unavailable` when the Secret cannot be read now."""
        if self._read_at is None or time.monotonic() - self._read_at >= self.refresh_after:
            text = (await self.read() or "").strip()
            key = text.encode() if len(text.encode()) >= answer_links.KEY_MIN else None
            if key is None:
                log.warning(
                    "the answer link key is missing or shorter than %d bytes: messages carry no answer links",
                    answer_links.KEY_MIN,
                )
            self._value, self._read_at = key, time.monotonic()
        return self._value


def add_routes(app: web.Application, answer: Answer) -> None:
    """The answer page's routes on ``app`` (the intake's application)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        form: dict[str, str] = {}
        if request.method == "POST":
            if request.content_length is not None and request.content_length > FORM_MAX:
                return _html(413, answer_page.refusal("The form is larger than an answer needs."))
            try:
                raw = await request.read()
                posted = await request.post() if raw else {}
            except (web.HTTPRequestEntityTooLarge, ValueError, UnicodeDecodeError):
                return _html(400, answer_page.refusal("The form could not be read."))
            form = {k: v for k, v in posted.items() if isinstance(v, str)}
        try:
            code, text = await answer(info["namespace"], info["name"], info["token"], request.method, form)
        except intake.Unavailable as error:
            log.warning("answer %s %s not served now: %s", request.method, request.path, error)
            return _html(503, answer_page.refusal("The on-call operator cannot answer now; try again in a minute."))
        return _html(code, text)

    app.router.add_route("GET", "/answer/{namespace}/{name}/{token}", handle)
    app.router.add_route("POST", "/answer/{namespace}/{name}/{token}", handle)


Accept = cabc.Callable[[str, bytes, web.Request], cabc.Awaitable[web.StreamResponse | None]]
"""(the provider's secret, the raw body, the request) -> the answer (None: an empty 200); raises
:class:`answer_links.RequestRefused` for a request that is not the provider's or not a payload."""


def add_signed_route(
    app: web.Application, path: str, what: str, setting: str, secret: SecretText, accept: Accept, body_max: int
) -> None:
    """``POST path`` for a provider that signs its requests with a shared secret (404 while none is configured)."""

    async def route(request: web.Request) -> web.StreamResponse:
        raw = await _body(request, body_max)
        if raw is None:
            return _error(413, f"the body is larger than {body_max} bytes")
        try:
            value = await secret()
        except intake.Unavailable as error:
            log.warning("%s not served now: %s", what, error)
            return _error(503, f"the secret of {what} cannot be read now")
        if not value:
            return _error(404, f"{what} is not configured ({setting})")
        try:
            reply = await accept(value, raw, request)
        except answer_links.RequestRefused as refused:
            return _error(refused.status, str(refused))
        except intake.Unavailable as error:  # the provider retries (Slack's user sees an error: try again)
            log.warning("%s not answered now: %s", what, error)
            return _error(503, "the Incident cannot be read or written now")
        return reply or web.Response(status=200)

    app.router.add_post(path, route)


def add_slack_route(
    app: web.Application, secret: SecretText, on_click: OnClick, clock: cabc.Callable[[], float] = time.time
) -> None:
    """``POST /slack/interactions``: the Slack app's interactivity request URL (signed with its signing secret)."""

    later: set[asyncio.Task[None]] = set()  # the message updates in flight, kept until done

    async def accept(value: str, raw: bytes, request: web.Request) -> None:
        headers = request.headers
        stamp, given = headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
        slack_answers.verify(value, stamp, given, raw, clock())
        click = slack_answers.parse(raw)
        follow = await on_click(click) if click is not None else None
        if follow is not None:  # after the answer: Slack wants it within three seconds
            task = asyncio.create_task(follow, name="slack message update")
            later.add(task)
            task.add_done_callback(later.discard)

    setting = "ONCALL_SLACK_SIGNING_SECRET"
    add_signed_route(app, "/slack/interactions", "Slack interactivity", setting, secret, accept, slack_answers.BODY_MAX)


def add_pagerduty_route(app: web.Application, secret: SecretText, on_event: OnEvent) -> None:
    """``POST /pagerduty/webhooks``: a PagerDuty v3 webhook subscription (signed with its secret)."""

    async def accept(value: str, raw: bytes, request: web.Request) -> None:
        pagerduty_answers.verify(value, request.headers.get("X-PagerDuty-Signature"), raw)
        event = pagerduty_answers.parse(raw)
        if event is not None:
            await on_event(event)

    setting = "ONCALL_PAGERDUTY_WEBHOOK_SECRET"
    add_signed_route(
        app, "/pagerduty/webhooks", "PagerDuty webhooks", setting, secret, accept, pagerduty_answers.BODY_MAX
    )


def add_twilio_routes(
    app: web.Application, secret: SecretText, external_url: str, on_sms: OnSms, on_voice: OnVoice
) -> None:
    """``POST /twilio/sms`` (a number's messaging webhook) and ``/twilio/voice`` (a page call's gather).

    Twilio signs the URL it was given: ``external_url`` and the path (with its query) make it.
    """

    def params(value: str, raw: bytes, request: web.Request) -> dict[str, str]:
        found = twilio_answers.form(raw)
        url = external_url.rstrip("/") + request.path_qs
        twilio_answers.verify(value, url, found, request.headers.get("X-Twilio-Signature"))
        return found

    async def sms(value: str, raw: bytes, request: web.Request) -> web.StreamResponse:
        text = await on_sms(params(value, raw, request))
        return web.Response(text=twilio_answers.message(text), content_type="text/xml")

    async def voice(value: str, raw: bytes, request: web.Request) -> web.StreamResponse:
        found = params(value, raw, request)
        text = await on_voice(request.query.get("answer", ""), found.get("Digits", ""))
        return web.Response(text=twilio_answers.spoken(text), content_type="text/xml")

    setting = "ONCALL_TWILIO_AUTH_SECRET and ONCALL_EXTERNAL_URL"
    for path, accept in ((twilio_answers.SMS_PATH, sms), (twilio_answers.VOICE_PATH, voice)):
        add_signed_route(app, path, "Twilio inbound", setting, secret, accept, twilio_answers.BODY_MAX)


async def _body(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        return None
    raw = await request.read()
    return raw if len(raw) <= limit else None


def _error(code: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=code, headers={"Cache-Control": "no-store"})


def _html(code: int, text: str) -> web.Response:
    headers = dict(HEADERS)
    if code == 405:
        headers["Allow"] = "GET"
    return web.Response(status=code, text=text, content_type="text/html", charset="utf-8", headers=headers)

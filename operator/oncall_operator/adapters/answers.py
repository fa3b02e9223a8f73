"""The answer routes on the operator's HTTP server: ``GET`` and ``POST /answer/<namespace>/<name>/<token>``.

A signed link from a page opens the answer page (GET, which never changes anything: mail
scanners and chat unfurlers fetch every link they see); only the POST of one of its buttons
acknowledges, resolves or writes a status update. The token in the path is the credential and
the CSRF token at once: a form elsewhere cannot post without knowing it. The routes move bytes
only: :data:`Answer` (the executor's) reads the Incident, checks the token and writes. Every
answer is HTML, with headers that keep it out of caches, frames and referrers.

:class:`LinkKey` is the operator's link key, read from its Secret when first needed and again
every few minutes (a rotated key is picked up; links signed with the old one stop acting).
"""

import collections.abc as cabc
import logging
import time

from aiohttp import web

from oncall_operator.adapters import intake
from oncall_operator.domain import answer_links, answer_page, pagerduty_answers, slack_answers

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
OnClick = cabc.Callable[[slack_answers.Click], cabc.Awaitable[None]]
OnEvent = cabc.Callable[[pagerduty_answers.Event], cabc.Awaitable[None]]


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


Accept = cabc.Callable[[str, bytes, cabc.Mapping[str, str]], cabc.Awaitable[web.StreamResponse | None]]
"""(the provider's secret, the raw body, the headers) -> the answer (None: an empty 200); raises
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
            reply = await accept(value, raw, request.headers)
        except answer_links.RequestRefused as refused:
            return _error(refused.status, str(refused))
        return reply or web.Response(status=200)

    app.router.add_post(path, route)


def add_slack_route(
    app: web.Application, secret: SecretText, on_click: OnClick, clock: cabc.Callable[[], float] = time.time
) -> None:
    """``POST /slack/interactions``: the Slack app's interactivity request URL (signed with its signing secret)."""

    async def accept(value: str, raw: bytes, headers: cabc.Mapping[str, str]) -> None:
        stamp, given = headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
        slack_answers.verify(value, stamp, given, raw, clock())
        click = slack_answers.parse(raw)
        if click is not None:
            await on_click(click)

    setting = "ONCALL_SLACK_SIGNING_SECRET"
    add_signed_route(app, "/slack/interactions", "Slack interactivity", setting, secret, accept, slack_answers.BODY_MAX)


def add_pagerduty_route(app: web.Application, secret: SecretText, on_event: OnEvent) -> None:
    """``POST /pagerduty/webhooks``: a PagerDuty v3 webhook subscription (signed with its secret)."""

    async def accept(value: str, raw: bytes, headers: cabc.Mapping[str, str]) -> None:
        pagerduty_answers.verify(value, headers.get("X-PagerDuty-Signature"), raw)
        event = pagerduty_answers.parse(raw)
        if event is not None:
            await on_event(event)

    setting = "ONCALL_PAGERDUTY_WEBHOOK_SECRET"
    add_signed_route(
        app, "/pagerduty/webhooks", "PagerDuty webhooks", setting, secret, accept, pagerduty_answers.BODY_MAX
    )


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

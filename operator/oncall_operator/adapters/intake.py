"""The HTTP side of the operator: Alertmanager's webhook, health, readiness and metrics.

``POST /api/v1/alerts`` takes Alertmanager webhook payloads (version 4). The status codes are
chosen for what Alertmanager does with them: it retries a 5xx and drops a 4xx. So a request
that can never succeed (no or a wrong token, too large, malformed) gets a 4xx with the reason
in a JSON body ``{"error": ..., "field": ...}``, and anything that may succeed later (the
Kubernetes API unreachable or failing, the token Secret unreadable, an unexpected error) gets
503 and is retried. 200 is answered only after the Incident write succeeded, so an alert
Alertmanager counts as delivered is on an Incident. No request can crash the server.

The app does not know Kubernetes: it is given the function that writes an alert group into
an Incident (:data:`Writer`) and where the token comes from, so the fuzz tests run it for real
and count the writes without any fake API.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import hmac
import json
import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import exposition

from oncall_operator.adapters import metrics
from oncall_operator.domain import alerts

MAX_BYTES = 8 * 1024 * 1024
"""The hard cap on a body. Big groups are not refused: the first ``alerts.MAX_ALERTS`` alerts are kept."""
WRITE_TIMEOUT = 30.0
CONCURRENCY = 32
"""Requests written at once; more wait up to ``QUEUE_SECONDS`` for a turn, then get 503 (Alertmanager retries)."""
QUEUE_SECONDS = 5.0
log = logging.getLogger(__name__)


class Unavailable(RuntimeError):
    """Something the intake needs (the Kubernetes API, the token Secret) does not answer now: retry."""


class Throttled(RuntimeError):
    """Too many new Incidents in one namespace: 429, retry after ``seconds``."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds


@dataclasses.dataclass(frozen=True)
class Accepted:
    """What became of an accepted notification: the Incident (``namespace/name``) or '' when none."""

    incident: str
    created: bool = False
    changed: bool = False
    phase: str = ""


Writer = cabc.Callable[[alerts.Payload], cabc.Awaitable[Accepted]]
Probe = cabc.Callable[[], cabc.Awaitable[str | None]]
"""Readiness: None when ready, else the reason."""


class Token:
    """The bearer token, read from its source when first needed and again after a mismatch
    once ``refresh_after`` seconds have passed (so a rotated Secret is picked up)."""

    def __init__(self, read: cabc.Callable[[], cabc.Awaitable[str]], refresh_after: float = 30.0) -> None:
        self.read, self.refresh_after = read, refresh_after
        self._value: str | None = None
        self._read_at = 0.0

    async def allows(self, header: str | None) -> bool:
        if self._value is None:
            await self._refresh()
        if _bearer_matches(header, self._value):
            return True
        if time.monotonic() - self._read_at >= self.refresh_after:
            await self._refresh()
            return _bearer_matches(header, self._value)
        return False

    async def _refresh(self) -> None:
        self._value = await self.read()  # raises Unavailable
        self._read_at = time.monotonic()


def _bearer_matches(header: str | None, token: str | None) -> bool:
    if not header or not token:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@dataclasses.dataclass
class Intake:
    """The intake's collaborators; ``token`` None means authentication is off."""

    write: Writer
    ready: Probe
    token: Token | None = None
    max_bytes: int = MAX_BYTES
    write_timeout: float = WRITE_TIMEOUT
    gate: asyncio.Semaphore = dataclasses.field(default_factory=lambda: asyncio.Semaphore(CONCURRENCY))
    routes: cabc.Sequence[cabc.Callable[[web.Application], None]] = ()
    """More routes on the same server (the answer links': ``adapters/answers.py``)."""


def build_app(intake: Intake) -> web.Application:
    app = web.Application(client_max_size=intake.max_bytes, middlewares=[_never_crash])

    async def receive(request: web.Request) -> web.StreamResponse:
        code, body, headers = await _receive(intake, request)
        metrics.INTAKE_REQUESTS.labels(code=str(code)).inc()
        return web.json_response(body, status=code, headers=headers)

    async def healthz(_: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.StreamResponse:
        try:
            reason = await intake.ready()
        except Exception as error:  # a probe that fails says "not ready", never 500
            reason = f"readiness probe failed: {error}"
        if reason:
            return web.json_response({"status": "not ready", "reason": reason}, status=503)
        return web.json_response({"status": "ready"})

    async def scrape(request: web.Request) -> web.StreamResponse:
        encode, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(metrics.REGISTRY), headers={"Content-Type": content_type})

    app.router.add_post("/api/v1/alerts", receive)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
    for add in intake.routes:
        add(app)
    return app


async def _receive(intake: Intake, request: web.Request) -> tuple[int, dict[str, Any], dict[str, str]]:
    if intake.token is not None:
        try:
            allowed = await intake.token.allows(request.headers.get("Authorization"))
        except Unavailable as error:
            return 503, _error(f"cannot check the bearer token now: {error}", "Authorization"), {}
        if not allowed:
            reason = "a valid bearer token is required (Authorization: Bearer <token>)"
            return 401, _error(reason, "Authorization"), {"WWW-Authenticate": 'Bearer realm="oncall-operator"'}
    too_large = _error(f"the body is larger than {intake.max_bytes} bytes", "body")
    if request.content_length is not None and request.content_length > intake.max_bytes:
        return 413, too_large, {"Connection": "close"}
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return 413, too_large, {"Connection": "close"}
    try:
        payload = alerts.parse(_json(raw))
    except alerts.Invalid as invalid:
        return 400, _error(str(invalid), invalid.field), {}
    try:
        async with asyncio.timeout(QUEUE_SECONDS):
            await intake.gate.acquire()
    except TimeoutError:
        busy = f"{CONCURRENCY} notifications are being written; retry"
        return 503, _error(busy, ""), {"Retry-After": "5"}
    try:
        accepted = await asyncio.wait_for(intake.write(payload), intake.write_timeout)
    except Throttled as error:
        return 429, _error(str(error), ""), {"Retry-After": str(max(1, round(error.seconds)))}
    except (Unavailable, TimeoutError) as error:
        why = str(error) or f"timed out after {intake.write_timeout}s"
        log.warning("alert group %r not written, Alertmanager will retry: %s", payload.group_key, why)
        return 503, _error(f"the Incident could not be written now, retry: {why}", ""), {}
    except Exception as error:  # a bug must not lose the alert: 503 makes Alertmanager retry
        log.exception("alert group %r not written", payload.group_key)
        return 503, _error(f"the Incident could not be written ({type(error).__name__}), retry", ""), {}
    finally:
        intake.gate.release()
    metrics.record_alerts(a.status for a in payload.alerts)
    return 200, {"status": "accepted", **dataclasses.asdict(accepted)}, {}


def _json(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise alerts.Invalid("body", f"is not UTF-8 (byte {error.start})") from None
    if not text.strip():
        raise alerts.Invalid("body", "is empty; expected an Alertmanager webhook payload (JSON)")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise alerts.Invalid("body", "is nested too deeply") from None
    except ValueError as error:
        raise alerts.Invalid("body", f"is not valid JSON: {error}") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _error(reason: str, field: str) -> dict[str, Any]:
    return {"error": reason, "field": field}


@web.middleware
async def _never_crash(
    request: web.Request, handler: cabc.Callable[[web.Request], cabc.Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise  # aiohttp's own answers (404, 405...) are 4xx and already say why
    except Exception as error:
        log.exception("intake request %s %s failed", request.method, request.path)
        return web.json_response(_error(f"internal error ({type(error).__name__}), retry", ""), status=503)


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving ``app``; the caller cleans the runner up at shutdown."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) as (host, port); ValueError with the reason otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"ONCALL_HTTP_ADDRESS {address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)

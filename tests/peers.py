"""Local peers that behave like Slack (incoming webhooks, Web API chat.postMessage), PagerDuty's
Events API v2 and Twilio's REST API (Messages, Calls).

Each receiver validates what it is sent against the provider's documented fields and answers
as the provider does (Slack: 200 ``ok`` or 400 ``invalid_payload``; PagerDuty: 202 or 400
``invalid event`` with the errors). Failure modes are chosen by the URL path (``down``,
``flaky``, ``ratelimited``...). Used by the notifier tests (asyncio) and, through
:class:`ThreadedPeer`, by the end-to-end tests, which are synchronous.
"""

import asyncio
import base64
import dataclasses
import datetime as dt
import email
import email.policy
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from aiohttp import test_utils, web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# --- the Slack, PagerDuty and Twilio receivers: validation as documented ------------------

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-0001"
SLACK_BOT_TOKEN = "xoxb-000000000000-0000000000000-XXXXSECRETXXXXBOT"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
SLACK_CHANNEL_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")
SLACK_MEMBER = re.compile(r"^[UW][A-Z0-9]{2,63}$")

SLACK_BLOCK_TYPES = {"section", "context", "header", "divider", "actions", "image", "rich_text", "input", "file"}
PAGERDUTY_SEVERITIES = {"critical", "error", "warning", "info"}
PAGERDUTY_ACTIONS = {"trigger", "acknowledge", "resolve"}


def slack_errors(body: Any) -> str | None:
    """Slack's answer word for a bad incoming-webhook payload, or None when it is fine."""
    if not isinstance(body, dict):
        return "invalid_payload"
    text, blocks = body.get("text"), body.get("blocks")
    if not (isinstance(text, str) and text.strip()) and not blocks:
        return "invalid_payload"  # text is required unless blocks are given
    if text is not None and not isinstance(text, str):
        return "invalid_payload"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in SLACK_BLOCK_TYPES:
            return "invalid_blocks"
        if block["type"] == "section":
            t = block.get("text")
            if not (
                isinstance(t, dict)
                and t.get("type") in ("mrkdwn", "plain_text")
                and isinstance(t.get("text"), str)
                and 1 <= len(t["text"]) <= 3000
            ):
                return "invalid_blocks"
        if block["type"] == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                return "invalid_blocks"
            for e in elements:
                if not isinstance(e, dict) or e.get("type") not in ("mrkdwn", "plain_text", "image"):
                    return "invalid_blocks"
                if e["type"] != "image" and not (isinstance(e.get("text"), str) and e["text"]):
                    return "invalid_blocks"
    return None


def pagerduty_errors(event: Any) -> list[str]:
    """What PagerDuty's Events API v2 says is wrong with an event (empty when valid)."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str):
        errors.append("'routing_key' is missing or not a string")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in PAGERDUTY_ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append(f"'dedup_key' is required for event_action '{action}'")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary:
                errors.append("'payload.summary' is missing")
            elif len(summary) > 1024:
                errors.append("'payload.summary' is longer than 1024 characters")
            if not isinstance(payload.get("source"), str) or not payload["source"]:
                errors.append("'payload.source' is missing")
            if payload.get("severity") not in PAGERDUTY_SEVERITIES:
                errors.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
            if "timestamp" in payload:
                try:
                    dt.datetime.fromisoformat(payload["timestamp"])
                except (TypeError, ValueError):
                    errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
            for field in ("component", "group", "class"):
                if field in payload and not isinstance(payload[field], str):
                    errors.append(f"'payload.{field}' must be a string")
            if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
                errors.append("'payload.custom_details' must be an object")
    links = event.get("links", [])
    if not isinstance(links, list) or not all(isinstance(x, dict) and isinstance(x.get("href"), str) for x in links):
        errors.append("'links' must be a list of objects with 'href'")
    return errors


def twilio_errors(form: dict[str, str], resource: str) -> tuple[int, str] | None:
    """(Twilio error code, message) for a bad Messages/Calls request, or None when it is fine."""
    if not E164.match(form.get("To", "")):
        return 21211, f"Invalid 'To' Phone Number: {form.get('To', '')}"
    if not E164.match(form.get("From", "")):
        return 21212, f"Invalid 'From' Phone Number: {form.get('From', '')}"
    if resource == "Messages":
        body = form.get("Body", "")
        if not body:
            return 21602, "Message body is required."
        if len(body) > 1600:
            return 21617, "The concatenated message body exceeds the 1600 character limit."
        return None
    twiml = form.get("Twiml")
    if not twiml and not form.get("Url"):
        return 21205, "Url or Twiml is required."
    if twiml is not None:
        if len(twiml) > 4000:
            return 32018, "Twiml size exceeded maximum allowed value of 4000 characters"
        try:
            root = ET.fromstring(twiml)
        except ET.ParseError:
            return 12100, "Document parse failure"
        if root.tag != "Response":
            return 12102, "Root element must be Response"
    return None


def basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme != "Basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return user, password


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclasses.dataclass
class Peer:
    """The HTTP receivers, and everything they accepted (valid payloads only) or were sent."""

    server: test_utils.TestServer
    accepted: list[Received] = dataclasses.field(default_factory=list)
    hits: dict[str, int] = dataclasses.field(default_factory=dict)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def accepted_at(self, path: str) -> list[Any]:
        return [r.body for r in self.accepted if r.path == path]


def build_app(peer_ref: list[Peer]) -> web.Application:
    async def read(request: web.Request) -> tuple[Peer, Any, int]:
        peer = peer_ref[0]
        peer.hits[request.path] = n = peer.hits.get(request.path, 0) + 1
        if request.content_type != "application/json":
            return peer, None, n
        try:
            return peer, await request.json(), n
        except ValueError:
            return peer, None, n

    async def slack(request: web.Request) -> web.StreamResponse:
        peer, body, _ = await read(request)
        if request.match_info["mode"] == "revoked":
            return web.Response(status=404, text="no_service")
        error = slack_errors(body)
        if error:
            return web.Response(status=400, text=error)
        peer.accepted.append(Received(request.path, dict(request.headers), body))
        return web.Response(text="ok")

    async def pagerduty(request: web.Request) -> web.StreamResponse:
        peer, body, n = await read(request)
        mode = request.match_info.get("mode", "")
        if mode == "down" or (mode == "flaky" and n <= 2):
            return web.json_response({"status": "error", "message": "Internal server error"}, status=500)
        if (mode == "ratelimited" and n == 1) or mode == "ratelimited-long":
            throttled = {"status": "throttle event", "message": "Requests for this service are arriving too quickly."}
            wait = "1" if mode == "ratelimited" else "3600"
            return web.json_response(throttled, status=429, headers={"Retry-After": wait})
        errors = pagerduty_errors(body)
        if errors:
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors}, status=400
            )
        peer.accepted.append(Received(request.path, dict(request.headers), body))
        dedup = body.get("dedup_key") or "generated-0001"
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202)

    async def hook(request: web.Request) -> web.StreamResponse:
        peer, body, n = await read(request)
        if request.match_info["mode"] == "flaky" and n == 1:
            peer.accepted.append(Received(request.path + "#failed", dict(request.headers), body))
            return web.Response(status=503, text="busy")
        peer.accepted.append(Received(request.path, dict(request.headers), body))
        return web.Response(status=204)

    async def twilio(request: web.Request) -> web.StreamResponse:
        peer = peer_ref[0]
        peer.hits[request.path] = peer.hits.get(request.path, 0) + 1
        sid, resource = request.match_info["sid"], request.match_info["resource"]
        if basic_auth(request.headers.get("Authorization", "")) != (sid, TWILIO_TOKEN) or sid != TWILIO_SID:
            error = {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003"}
            return web.json_response({**error, "status": 401}, status=401)
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response(
                {"code": 21601, "message": "Form-encoded body expected", "status": 400}, status=400
            )
        form = {k: str(v) for k, v in (await request.post()).items()}
        problem = twilio_errors(form, resource)
        if problem:
            code, message = problem
            info = f"https://www.twilio.com/docs/errors/{code}"
            return web.json_response({"code": code, "message": message, "more_info": info, "status": 400}, status=400)
        peer.accepted.append(Received(request.path, dict(request.headers), form))
        prefix = "SM" if resource == "Messages" else "CA"
        return web.json_response({"sid": f"{prefix}{len(peer.accepted):032x}", "status": "queued"}, status=201)

    async def slack_api(request: web.Request) -> web.StreamResponse:
        peer, body, _ = await read(request)
        if request.headers.get("Authorization") != f"Bearer {SLACK_BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_json"})
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel or channel[0] not in "CGDUW":
            return web.json_response({"ok": False, "error": "channel_not_found"})
        error = slack_errors({k: v for k, v in body.items() if k in ("text", "blocks")})
        if error:
            return web.json_response({"ok": False, "error": error})
        peer.accepted.append(Received(request.path, dict(request.headers), body))
        opened = "D" + channel[1:] if channel[0] in "UW" else channel  # a DM to a member ID opens the IM
        return web.json_response({"ok": True, "channel": opened, "ts": f"1700000000.{len(peer.accepted):06d}"})

    async def conversations(request: web.Request) -> web.StreamResponse:
        peer, body, _ = await read(request)
        if request.headers.get("Authorization") != f"Bearer {SLACK_BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_json"})
        if request.match_info["method"] == "create":
            name = body.get("name")
            if not isinstance(name, str) or not SLACK_CHANNEL_NAME.match(name):
                return web.json_response({"ok": False, "error": "invalid_name_specials"})
            if any(r.body.get("name") == name for r in peer.accepted if r.path.endswith("conversations.create")):
                return web.json_response({"ok": False, "error": "name_taken"})
            peer.accepted.append(Received(request.path, dict(request.headers), body))
            return web.json_response({"ok": True, "channel": {"id": f"C0ROOM{len(peer.accepted):04d}", "name": name}})
        users = body.get("users")
        if not isinstance(body.get("channel"), str) or not isinstance(users, str) or not users:
            return web.json_response({"ok": False, "error": "no_user"})
        if not all(SLACK_MEMBER.match(u) for u in users.split(",")):
            return web.json_response({"ok": False, "error": "user_not_found"})
        peer.accepted.append(Received(request.path, dict(request.headers), body))
        return web.json_response({"ok": True, "channel": {"id": body["channel"]}})

    app = web.Application()
    app.router.add_post("/api/conversations.{method:create|invite}", conversations)
    app.router.add_post("/2010-04-01/Accounts/{sid}/{resource:Messages|Calls}.json", twilio)
    app.router.add_post("/api/chat.postMessage", slack_api)
    app.router.add_post("/services/{mode}/T000/B000/XXXXSECRETXXXX", slack)
    app.router.add_post("/v2/enqueue", pagerduty)
    app.router.add_post("/{mode}/v2/enqueue", pagerduty)
    app.router.add_post("/hook/{mode}", hook)
    return app


class ThreadedPeer:
    """The same receivers on their own event loop in a thread, for synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ref: list[Peer] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "Peer":
        self.thread.start()
        server = test_utils.TestServer(build_app(self.ref), host="127.0.0.1")
        self.ref.append(Peer(server))
        asyncio.run_coroutine_threadsafe(server.start_server(), self.loop).result(10)
        return self.ref[0]

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.ref[0].server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def threaded_peer() -> Iterator[Peer]:
    with ThreadedPeer() as peer:
        yield peer


class LoopbackController(Controller):
    """aiosmtpd's Controller on a port the OS picks (its start-up probe needs the real port)."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated


class Inbox:
    """The aiosmtpd handler of the end-to-end tests: keeps every message delivered."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        msg = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        self.messages.append(msg)
        return "250 2.0.0 accepted"

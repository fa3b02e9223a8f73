"""``kubectl oncall board``: a local web page for the on-call, served on 127.0.0.1 with the user's kubeconfig.

It reads and writes as the user (their RBAC applies; no new credential, nothing listens beyond
loopback). Because any page the user visits could try to reach a localhost server, the board:

- answers only requests whose ``Host`` is its own ``127.0.0.1:PORT`` or ``localhost:PORT``
  (a DNS-rebinding page arrives with its own host name);
- changes nothing on GET; a POST must carry the token embedded in its own page (a cross-site
  form cannot read it) and, when the browser sends ``Origin``, come from the board's origin;
- forbids framing and scripts (``Content-Security-Policy``), so it cannot be clickjacked.

Acknowledge and Resolve call the same lifecycle edit as ``kubectl oncall ack|resolve``.
"""

import argparse
import asyncio
import dataclasses
import datetime as dt
import hmac
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable

import kubernetes
from aiohttp import web

from oncall_operator.api import incident, schedule
from oncall_operator.domain import checks
from oncall_operator.kubectl_plugin import board_page, incidents, who
from oncall_operator.kubectl_plugin.errors import USAGE, PluginError
from oncall_operator.kubectl_plugin.session import Session, now, whoami

DAYS = 14
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make the browser send Origin: null on our own POSTs
    "Cache-Control": "no-store",
}


@dataclasses.dataclass
class Board:
    session: Session
    refresh: int
    user: str = ""
    token: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))
    hosts: frozenset[str] = frozenset()
    notice: tuple[str, bool] = ("", False)

    def origins(self) -> set[str]:
        return {f"http://{host}" for host in self.hosts}

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Host and CSRF checks before any handler; the security headers on every answer, redirects included."""
        if request.host not in self.hosts:
            response: web.StreamResponse = web.Response(status=403, text="this board answers only to its own address\n")
        elif request.method == "POST" and not await self._same_origin(request):
            response = web.Response(status=403, text="missing or wrong CSRF token\n")
        else:
            try:
                response = await handler(request)
            except web.HTTPException as answer:
                answer.headers.update(HEADERS)
                raise
        response.headers.update(HEADERS)
        return response

    async def _same_origin(self, request: web.Request) -> bool:
        """The form carries this board's token and, when the browser says where it posts from, it is from here."""
        origin = request.headers.get("Origin")
        token = str((await request.post()).get("csrf", ""))
        return (origin is None or origin in self.origins()) and hmac.compare_digest(token.encode(), self.token.encode())

    async def index(self, request: web.Request) -> web.Response:
        start = None
        if "from" in request.query:
            try:
                day = dt.date.fromisoformat(request.query["from"])
            except ValueError:
                return web.Response(status=400, text="from= must be a date like 2026-03-26\n")
            start = dt.datetime.combine(day, dt.time(12, 0), dt.UTC)
        text, failed = self.notice
        self.notice = ("", False)
        try:
            found, scheds = await asyncio.gather(
                asyncio.to_thread(incidents.open_incidents, self.session), asyncio.to_thread(self._schedules)
            )
        except kubernetes.client.ApiException as error:  # e.g. RBAC: say so on the page, keep serving
            found, scheds = [], []
            text, failed = f"cannot read: the API server said {error.status} {error.reason}", True
        view = board_page.View(
            context=self.session.context,
            scope="all namespaces" if self.session.all_namespaces else f"namespace {self.session.namespace}",
            user=self.user,
            incidents=[incident.Incident.model_validate(raw) for raw in found],
            schedules=scheds,
            start=start,
            days=DAYS,
            now=now(),
            token=self.token,
            refresh=self.refresh,
            notice=text,
            failed=failed,
        )
        return web.Response(text=board_page.page(view), content_type="text/html")

    def _schedules(self) -> list[schedule.OnCallSchedule]:
        try:
            return [s for s in who.fetch(self.session, None) if checks.zone_exists(s.spec.time_zone)]
        except PluginError:
            return []

    async def act(self, request: web.Request) -> web.Response:
        namespace, name, verb = (request.match_info[k] for k in ("namespace", "name", "verb"))
        if verb not in incidents.ACTIONS:
            return web.Response(status=404, text="no such action\n")
        if not self.session.all_namespaces and namespace != self.session.namespace:
            return web.Response(status=403, text="outside the board's namespace\n")
        try:
            said = await asyncio.to_thread(incidents.edit, self.session.kube, namespace, name, incidents.ACTIONS[verb])
            self.notice = (said, False)
        except PluginError as error:
            self.notice = (str(error), True)
        except kubernetes.client.ApiException as error:
            self.notice = (f"the API server said {error.status} {error.reason}", True)
        raise web.HTTPSeeOther("/")


async def serve(board: Board, port: int) -> None:
    app = web.Application(middlewares=[board.guard])
    app.router.add_get("/", board.index)
    app.router.add_post("/incidents/{namespace}/{name}/{verb}", board.act)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise PluginError(f"cannot listen on 127.0.0.1:{port}: {error.strerror}", USAGE) from error
    bound = runner.addresses[0][1]
    board.hosts = frozenset({f"127.0.0.1:{bound}", f"localhost:{bound}"})
    print(f"board at http://127.0.0.1:{bound}/ as {board.user} (Ctrl-C to stop)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def cmd_board(s: Session, args: argparse.Namespace) -> str:
    board = Board(s, max(args.refresh, 1), user=whoami(s.kube))
    asyncio.run(serve(board, args.port))
    print("board stopped", file=sys.stderr)
    return ""

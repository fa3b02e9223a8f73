"""A counting window onto the API server: a plain-HTTP reverse proxy that logs every request.

The API server's own ``apiserver_request_total`` has no user-agent label, and the operator's
other loops (Kopf's handlers, the escalation ticks) read and write the same Incidents as the
intake. So the operator under test talks to the real API server through this proxy, which
forwards every request as it came (watches streamed) with the admin credentials, and records
its user agent, method, path and answer: the intake's requests are those of its own user agent.
Nothing is faked; the proxy only watches the wire.
"""

import asyncio
import base64
import collections.abc as cabc
import contextlib
import dataclasses
import pathlib
import ssl
import threading
import typing

import aiohttp
import yaml
from aiohttp import web

T = typing.TypeVar("T")

# hop-by-hop, or recomputed by aiohttp; Accept-Encoding too, so the answers pass through uncompressed
_DROPPED = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "accept-encoding", "upgrade"}
_NOT_RETURNED = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclasses.dataclass(frozen=True)
class Request:
    user_agent: str
    method: str
    path: str
    status: int
    query: str = ""


class RequestLog:
    """The proxy on 127.0.0.1 (its own event loop in a thread) and what went through it."""

    def __init__(self, kubeconfig: pathlib.Path, workdir: pathlib.Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        self.upstream = cluster["server"].rstrip("/")
        files = {}
        for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            path = workdir / key
            path.write_bytes(base64.b64decode(cluster.get(key) or user.get(key)))
            files[key] = path
        self.tls = ssl.create_default_context(cafile=str(files["certificate-authority-data"]))
        self.tls.load_cert_chain(str(files["client-certificate-data"]), str(files["client-key-data"]))
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._held: tuple[str, asyncio.Event] | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port: int = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        self.kubeconfig = workdir / "proxied.kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                    "users": [{"name": "through-proxy", "user": {}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "through-proxy"}}],
                    "current-context": "proxy",
                }
            )
        )

    async def _start(self) -> int:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        # a watch's handler ends when its client goes, not when the API server ends the watch
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port: int = self.runner.addresses[0][1]
        return port

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        body = await request.read()
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            ssl=self.tls,
            skip_auto_headers=["Content-Type"],  # none stays none (the API server then takes JSON)
        ) as upstream:
            with self._lock:
                self.requests.append(
                    Request(
                        request.headers.get("User-Agent", ""),
                        request.method,
                        request.path,
                        upstream.status,
                        request.query_string,
                    )
                )
            answer = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_RETURNED},
            )
            await answer.prepare(request)
            watch = request.query.get("watch") in ("true", "1")
            try:
                async for chunk in upstream.content.iter_any():
                    held = self._held if watch else None
                    if held and held[0] in request.path:
                        await held[1].wait()  # the watch's events wait in the proxy: its client's cache goes stale
                    await answer.write(chunk)
                await answer.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client went away (a watch closed by the operator at shutdown)
            return answer

    def since(self, mark: int, user_agent: str) -> list[tuple[str, str, int]]:
        """(method, path, status) of the requests of ``user_agent`` after the ``mark``-th request."""
        with self._lock:
            return [(r.method, r.path, r.status) for r in self.requests[mark:] if r.user_agent == user_agent]

    def all_since(self, mark: int) -> list[Request]:
        """Every request after the ``mark``-th, whoever sent it, with its query (``dryRun=All``)."""
        with self._lock:
            return self.requests[mark:]

    @contextlib.contextmanager
    def watches_held(self, path_part: str) -> cabc.Iterator[None]:
        """Hold back the events of the watches whose path contains ``path_part``, until the block ends."""

        def hold() -> asyncio.Event:
            self._held = (path_part, asyncio.Event())
            return self._held[1]

        event = self._call(hold)
        try:
            yield
        finally:
            self._call(lambda: self._release(event))

    def _release(self, event: asyncio.Event) -> None:
        self._held = None
        event.set()

    def _call(self, fn: cabc.Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def close(self) -> None:
        async def stop() -> None:
            await self.session.close()  # ends the watches still streamed
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

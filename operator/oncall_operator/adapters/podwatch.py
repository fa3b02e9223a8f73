"""The operator's own list+watch of Pods for OOM kills: it keeps a resourceVersion and nothing else.

Kopf's pod watch cost 349 MiB steady, 427 MiB peak at 10,000 pods (kwok bench) against a target
of 150 MiB: Kopf lists every pod in one unpaginated response (one huge JSON decoded at once, which
fragments the heap) and keeps per-object state and a worker for every pod before a ``when=``
filter can drop it. Here a pod is a dict for as long as it takes :func:`oom.has_oom` to look at
its status; only OOM-killed pods are handed on, and nothing about any pod is kept afterwards.

The protocol is the one client-go's reflector follows: a LIST in pages (``limit``, ``continue``),
then a WATCH from the list's resourceVersion with bookmarks (which move the resourceVersion on
without an object), a server timeout and a client timeout (a half-open connection must not
freeze the watch forever); a watch that ends is resumed from the last resourceVersion seen; 410
Gone (too old, as an HTTP answer or as an ERROR event) means list again. Connection errors and
refusals are retried with a bounded exponential backoff, each logged in one line; nothing here
ends the operator. The stream is split into lines here: aiohttp's ``readline`` refuses lines over
64 KiB, and one pod (big annotations) can be larger.

OOM-killed pods on a list are handed on too: a kill that happened while the operator was down,
or standing by, must be handled (the executor counts each kill once, by its Incident). With Kopf
peering a standby replica closes Kopf's watches; this one is closed as well while the replica
does not act (:func:`peering.acting`), and opened, with a fresh list, when it starts to act.

Each OOM pod is handled in a task of its own (the reader never waits for a remediation), at most
``concurrency`` at a time, one at a time per pod (a newer event of a pod whose remediation is
running replaces any older one waiting: the newest status says everything the older did).
"""

import asyncio
import collections.abc as cabc
import dataclasses
import json
import logging
from typing import Any

import aiohttp
import prometheus_client

from oncall_operator.adapters import apiserver, metrics, peering
from oncall_operator.domain import matching, oom

log = logging.getLogger(__name__)

SERVER_TIMEOUT = 300
"""Seconds the API server keeps a watch open (``timeoutSeconds``); the client waits 30 s longer."""
CHUNK = 64 * 1024
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
ACTING_POLL = 1.0
"""Seconds between looks at :func:`peering.acting` (itself refreshed every few seconds with peering)."""
QUIET = 1.0
"""A watch that ends sooner than this (seconds) without any event is retried after a backoff."""
GLOB = frozenset("*?[")

RESTARTS = prometheus_client.Counter(
    "oncall_pod_watch_restarts",
    "Restarts of the pod watch, by reason: list (a fresh list: start-up or this replica starting to act), "
    "expired (410 Gone: the resourceVersion was too old, listed again), timeout (the watch ended, resumed "
    "from its resourceVersion), error (a connection error or a refusal, retried after a backoff)",
    ["reason"],
    registry=metrics.REGISTRY,
)

Pod = dict[str, Any]
Handle = cabc.Callable[[Pod], cabc.Awaitable[None]]


class Expired(Exception):
    """The resourceVersion (or a list's continue token) is too old: list again from scratch."""


@dataclasses.dataclass(frozen=True)
class Event:
    """One watch event: its type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) and its object."""

    type: str
    obj: dict[str, Any]

    @property
    def resource_version(self) -> str | None:
        return (self.obj.get("metadata") or {}).get("resourceVersion") or None


class Lines:
    """Splits a byte stream into lines whatever the chunk boundaries, with no limit on a line's length."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """The complete, non-blank lines this chunk ends; a partial last line waits for the next chunk."""
        self.buffer += chunk
        if b"\n" not in chunk:
            return []
        *lines, rest = self.buffer.split(b"\n")
        self.buffer = bytearray(rest)
        return [bytes(line) for line in lines if line.strip()]


def decode(line: bytes) -> Event:
    """A watch event from one line of the stream; ValueError when it is not one."""
    found = json.loads(line)
    kind, obj = (found.get("type"), found.get("object")) if isinstance(found, dict) else (None, None)
    if not isinstance(kind, str) or not isinstance(obj, dict):
        raise ValueError(f"not a watch event: {line[:200]!r}")
    return Event(kind, obj)


def paths(patterns: cabc.Sequence[str], group: str = "/api/v1", plural: str = "pods") -> tuple[str, ...]:
    """Where to list and watch ``plural``: each namespace by name when every included pattern is a plain
    name (the RBAC of a namespaced install grants no more), else the whole cluster (then filtered)."""
    includes = list(dict.fromkeys(p for p in patterns if not p.startswith("!")))
    if includes and not any(GLOB & set(p) for p in includes):
        return tuple(f"{group}/namespaces/{ns}/{plural}" for ns in includes)
    return (f"{group}/{plural}",)


class Dispatcher:
    """Hands OOM pods to ``handle``, each in its own task; keeps the tasks so they can be cancelled."""

    def __init__(self, handle: Handle, concurrency: int) -> None:
        self.handle = handle
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.busy: set[str] = set()
        self.waiting: dict[str, Pod] = {}

    def submit(self, pod: Pod) -> None:
        meta = pod.get("metadata") or {}
        key = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
        if key in self.busy:
            self.waiting[key] = pod  # the newest status replaces an older one not yet handled
            return
        self.busy.add(key)
        task = asyncio.create_task(self._run(key, pod), name=f"oom {meta.get('namespace')}/{meta.get('name')}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, key: str, pod: Pod | None) -> None:
        try:
            while pod is not None:
                async with self.slots:
                    try:
                        await self.handle(pod)
                    except Exception:
                        meta = pod.get("metadata") or {}
                        log.exception("OOM %s/%s: handling failed", meta.get("namespace"), meta.get("name"))
                pod = self.waiting.pop(key, None)
        finally:
            self.busy.discard(key)
            self.waiting.pop(key, None)

    async def close(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclasses.dataclass
class Follower:
    """One LIST+WATCH (the cluster's pods, or one namespace's): where it is, and how it fares."""

    path: str
    resource_version: str | None = None
    """Where the next watch starts; None: list first."""
    failures: int = 0


class PodWatch:
    """Lists and watches pods while this replica acts, and hands every OOM-killed pod in scope to ``handle``."""

    def __init__(
        self,
        api: apiserver.Api,
        patterns: cabc.Sequence[str],
        handle: Handle,
        concurrency: int = 32,
        page: int = apiserver.PAGE,
        server_timeout: int = SERVER_TIMEOUT,
    ) -> None:
        self.api, self.patterns, self.page, self.server_timeout = api, tuple(patterns), page, server_timeout
        self.followers = [Follower(path) for path in paths(patterns)]
        self.dispatcher = Dispatcher(handle, concurrency)

    async def run(self) -> None:
        """Forever: wait until this replica acts, then list and watch until it no longer does."""
        while True:
            while not peering.acting():
                await asyncio.sleep(ACTING_POLL)
            where = ", ".join(f.path for f in self.followers)
            log.info("pod watch: acting, listing and watching %s", where)
            tasks = []
            for follower in self.followers:
                follower.resource_version = None  # kills during a stand-by are only on a fresh list
                tasks.append(asyncio.create_task(self.follow(follower), name=f"pod watch {follower.path}"))
            try:
                while peering.acting():
                    await asyncio.sleep(ACTING_POLL)
                log.info("pod watch: standing by, watch closed")
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel the remediations still running (the caller cancels :meth:`run`, then closes the session)."""
        await self.dispatcher.close()

    async def follow(self, follower: Follower) -> None:
        """List (when there is no resourceVersion) and watch, again and again; never raises but CancelledError."""
        while True:
            try:
                if follower.resource_version is None:
                    RESTARTS.labels("list").inc()
                    follower.resource_version = await self.list_pods(follower.path)
                    follower.failures = 0
                began = asyncio.get_running_loop().time()
                seen = await self.watch(follower)
                RESTARTS.labels("timeout").inc()
                if seen or asyncio.get_running_loop().time() - began >= QUIET:
                    follower.failures = 0
                    continue
                delay = self._backoff(follower)  # ended at once, with nothing: a proxy, say; do not spin
                log.debug("pod watch %s: ended at once without an event; again in %.1fs", follower.path, delay)
            except Expired as error:
                RESTARTS.labels("expired").inc()
                log.info("pod watch %s: %s; listing again", follower.path, error)
                follower.resource_version = None
                continue
            except (aiohttp.ClientError, TimeoutError, apiserver.ApiError, ValueError) as error:
                RESTARTS.labels("error").inc()
                delay = self._backoff(follower)
                log.warning("pod watch %s: %s; again in %.1fs", follower.path, _describe(error), delay)
            except Exception:  # a bug must not end the OOM watch for good: say it once, back off, go on
                RESTARTS.labels("error").inc()
                delay = self._backoff(follower)
                log.exception("pod watch %s failed; again in %.1fs", follower.path, delay)
            await asyncio.sleep(delay)

    def _backoff(self, follower: Follower) -> float:
        delay: float = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0**follower.failures)
        follower.failures += 1
        return delay

    async def list_pods(self, path: str) -> str:
        """Every pod on ``path``, page by page; hands on the OOM-killed; returns the list's resourceVersion."""
        pages, count, version = 0, 0, ""
        try:
            async for page in self.api.pages(path, self.page):
                items = page.get("items") or ()
                for item in items:
                    self.offer(item)
                pages, count = pages + 1, count + len(items)
                version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        except apiserver.ApiError as error:
            if error.status == 410:  # the continue token expired
                raise Expired(error.message) from error
            raise
        log.info("pod watch %s: listed %d pods in %d page(s), resourceVersion %s", path, count, pages, version)
        if not version:
            raise ValueError(f"a list of {path} without a resourceVersion")
        return version

    async def watch(self, follower: Follower) -> bool:
        """Watch from the follower's resourceVersion until the server ends it; whether any event came."""
        assert follower.resource_version is not None
        params = {
            "watch": "true",
            "resourceVersion": follower.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.server_timeout),
        }
        timeout = aiohttp.ClientTimeout(total=self.server_timeout + 30, sock_connect=10)
        seen = False
        try:
            async with self.api.stream(follower.path, timeout, **params) as reply:
                lines = Lines()
                async for chunk in reply.content.iter_chunked(CHUNK):
                    for line in lines.feed(chunk):
                        event = decode(line)
                        if event.type == "ERROR":
                            raise _refusal(event.obj)
                        follower.resource_version = event.resource_version or follower.resource_version
                        if not seen:
                            seen, follower.failures = True, 0
                        if event.type != "BOOKMARK":
                            self.offer(event.obj)
        except apiserver.ApiError as error:
            if error.status == 410:
                raise Expired(error.message) from error
            raise
        return seen

    def offer(self, pod: Pod) -> None:
        """Hand the pod on when it shows an OOM kill, is in scope, and this replica acts; else forget it."""
        if not oom.has_oom(pod.get("status")):
            return
        if not matching.in_scope((pod.get("metadata") or {}).get("namespace", ""), self.patterns):
            return
        if peering.acting():
            self.dispatcher.submit(pod)


def _refusal(status: cabc.Mapping[str, Any]) -> apiserver.ApiError:
    """An ERROR event's Status as the error it is (410 Gone: the resourceVersion is too old)."""
    code = int(status.get("code") or 500)
    return apiserver.ApiError(code, str(status.get("message") or status.get("reason") or "watch error"))


def _describe(error: Exception) -> str:
    if isinstance(error, apiserver.ApiError):
        return f"API server answered {error.status}: {error.message}"
    return str(error) or type(error).__name__


for _reason in ("list", "expired", "timeout", "error"):  # every reason exported from the start, at 0
    RESTARTS.labels(_reason)

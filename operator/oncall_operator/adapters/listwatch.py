"""List+watch of one resource, as client-go's reflector does it: paged lists, resumed watches, a standby's keeping.

The pod watch (:mod:`.podwatch`) and the Incident watch (:mod:`.incidentwatch`) both follow it:
a LIST in pages (``limit``, ``continue``), then a WATCH from the list's resourceVersion with
bookmarks (which move the resourceVersion on without an object), a server timeout and a client
timeout (a half-open connection must not freeze the watch forever); a watch that ends is resumed
from the last resourceVersion seen; 410 Gone (too old, as an HTTP answer or as an ERROR event)
means list again. Connection errors and refusals are retried with a bounded exponential backoff,
each logged in one line; nothing here ends the operator.

A watch runs only while this replica acts (:func:`peering.acting`): Kopf closes its own watches
on a standby replica, and so does this one; it lists afresh when the replica starts to act.
Unless it follows while standing by (:attr:`ListWatch.follows_standing_by`, the Incident watch):
then it lists and watches all along, keeps what it shows while the replica stands by
(:mod:`.kept`), and hands that on when the replica acts, what may be due first.
Each page of a list is handed on before the next is asked for, and a subclass may hold the list
back between pages (:meth:`ListWatch.paced`): a list of 10,000 objects then never holds them all
decoded at once.

The stream's lines, their events and the per-object dispatch of those events are
:mod:`.watchevents`.
"""

import asyncio
import collections
import collections.abc as cabc
import dataclasses
import logging
from typing import Any

import aiohttp
import prometheus_client

from oncall_operator.adapters import apiserver, kept, metrics, peering, watchevents
from oncall_operator.domain import matching

log = logging.getLogger(__name__)

SERVER_TIMEOUT = 300
"""Seconds the API server keeps a watch open (``timeoutSeconds``); the client waits 30 s longer."""
CHUNK = 64 * 1024
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
ACTING_POLL = 1.0
"""Seconds between looks at :func:`peering.acting` when no change of it (:func:`peering.changed`) comes first."""
QUIET = 1.0
"""A watch that ends sooner than this (seconds) without any event is retried after a backoff."""
GLOB = frozenset("*?[")
REASONS = ("list", "expired", "timeout", "error")
RESTARTS_HELP = (
    "by reason: list (a fresh list: start-up or this replica starting to act), expired (410 Gone: the "
    "resourceVersion was too old, listed again), timeout (the watch ended, resumed from its resourceVersion), "
    "error (a connection error or a refusal, retried after a backoff)"
)

KEPT = -1
"""The rank a list gives an object while the replica stands by: handed to :meth:`ListWatch.hand`, which keeps it."""


def paths(patterns: cabc.Sequence[str], group: str = "/api/v1", plural: str = "pods") -> tuple[str, ...]:
    """Where to list and watch ``plural``: each namespace by name when every included pattern is a plain
    name (the RBAC of a namespaced install grants no more), else the whole cluster (then filtered)."""
    includes = list(dict.fromkeys(p for p in patterns if not p.startswith("!")))
    if includes and not any(GLOB & set(p) for p in includes):
        return tuple(f"{group}/namespaces/{ns}/{plural}" for ns in includes)
    return (f"{group}/{plural}",)


@dataclasses.dataclass
class Follower:
    """One LIST+WATCH (the cluster's pods, or one namespace's): where it is, and how it fares."""

    path: str
    resource_version: str | None = None
    """Where the next watch starts; None: list first."""
    failures: int = 0
    known: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    """(namespace, name) -> uid of every object the list and the watch showed (only when the watch forgets)."""


class ListWatch:
    """Lists and watches ``paths`` while this replica acts, and hands each object it :meth:`takes` (wanted,
    in scope of ``patterns``) to the ``dispatcher``.

    ``what`` names the watch in its log lines (written to ``logger``, the watch's own module);
    ``restarts`` counts its restarts by reason.
    """

    def __init__(
        self,
        api: apiserver.Api,
        paths: cabc.Sequence[str],
        patterns: cabc.Sequence[str],
        dispatcher: watchevents.Dispatcher,
        what: str,
        restarts: prometheus_client.Counter,
        logger: logging.Logger,
        page: int = apiserver.PAGE,
        server_timeout: int = SERVER_TIMEOUT,
    ) -> None:
        self.api, self.what, self.restarts, self.log = api, what, restarts, logger
        self.patterns, self.dispatcher = tuple(patterns), dispatcher
        self.page, self.server_timeout = page, server_timeout
        self.followers = [Follower(path) for path in paths]
        self.handing = False
        """Whether events go to the dispatcher now (a watch that follows while standing by: else kept)."""
        self.kept = kept.Kept()
        self.replaying: set[kept.Key] = set()
        """Keys a replay holds back for after its due ones; a newer event handed meanwhile takes one out."""

    forgets = False
    """Whether an object a fresh list no longer shows is handed on as DELETED (deleted while no watch ran)."""
    follows_standing_by = False
    """Whether the list+watch runs while this replica stands by too, keeping what it shows (:mod:`.kept`)
    to hand on when the replica acts, instead of listing then: a takeover starts from memory."""

    def rank(self, obj: cabc.Mapping[str, Any]) -> int:
        """When a listed object is handed on: 0 at once (every one by default), else after the whole list,
        rank 1 before rank 2 and so on, each rank in the list's order."""
        return 0

    def wants(self, event: watchevents.Event) -> bool:
        """Whether the object is one to handle (every one by default; the subclass narrows it)."""
        return True

    def takes(self, event: watchevents.Event) -> bool:
        """Wanted and in scope. A cluster-wide list or watch (glob patterns) shows every namespace: an
        object out of scope stops here, before it is remembered, held back or handed on."""
        namespace = (event.obj.get("metadata") or {}).get("namespace", "")
        return self.wants(event) and matching.in_scope(namespace, self.patterns)

    def live(self) -> bool:
        """Whether :meth:`hand` gives events to the dispatcher now (not: it drops them, or keeps them)."""
        return self.handing if self.follows_standing_by else peering.acting()

    def hand(self, event: watchevents.Event) -> None:
        """A taken object to the dispatcher while this replica acts; kept while it stands by, when the watch
        follows then too."""
        if not self.follows_standing_by:
            if peering.acting():
                self.dispatcher.submit(event)
            return
        if self.handing and not peering.acting():
            self._stand_by()  # before the run loop notices: nothing is handed on once the replica stands by
        if not self.handing:
            self.kept.keep(event.type, event.obj)
            return
        if self.replaying:
            self.replaying.discard(kept.key_of(event.obj))
        self.dispatcher.submit(event)

    async def close(self) -> None:
        """Cancel the handlers still running (the caller cancels :meth:`run` first, then closes the session)."""
        await self.dispatcher.close()

    async def ready(self) -> None:
        """Awaited before each acting term's first list (nothing by default)."""

    async def paced(self) -> None:
        """Awaited after each page of a list, before the next is asked for (nothing by default)."""

    async def run(self) -> None:
        """Forever: wait until this replica acts, then list and watch until it no longer does (or, when the
        watch :attr:`follows_standing_by`, list and watch all along, handing on only while it acts)."""
        if self.follows_standing_by:
            await self._run_throughout()
            return
        while True:
            while not peering.acting():
                await peering.changed(ACTING_POLL)
            await self.ready()
            where = ", ".join(f.path for f in self.followers)
            self.log.info("%s watch: acting, listing and watching %s", self.what, where)
            tasks = []
            for follower in self.followers:
                follower.resource_version = None  # what changed during a stand-by is only on a fresh list
                tasks.append(asyncio.create_task(self.follow(follower), name=f"{self.what} watch {follower.path}"))
            try:
                while peering.acting():
                    await peering.changed(ACTING_POLL)
                self.log.info("%s watch: standing by, watch closed", self.what)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_throughout(self) -> None:
        where = ", ".join(f.path for f in self.followers)
        self.log.info("%s watch: listing and watching %s, whether this replica acts or stands by", self.what, where)
        tasks = [asyncio.create_task(self.follow(f), name=f"{self.what} watch {f.path}") for f in self.followers]
        try:
            while True:
                if peering.acting() and not self.handing:
                    await self.ready()
                    if peering.acting():
                        await self.replay()
                    continue
                if not peering.acting() and self.handing:
                    self._stand_by()
                await peering.changed(ACTING_POLL)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _stand_by(self) -> None:
        self.handing = False
        self.log.info("%s watch: standing by, keeping what the watch shows", self.what)

    async def replay(self) -> None:
        """This replica starts to act: hand on what was kept while it stood by, what may be due (rank 0) and
        the deleted first, the rest by rank; events from now on go to the dispatcher at once."""
        entries = self.kept.take()
        self.handing = True
        ranked: collections.Counter[int] = collections.Counter()
        held: dict[int, list[tuple[kept.Key, bytes]]] = {}
        self.replaying = set(entries)
        for i, (key, (kind, packed)) in enumerate(entries.items()):
            if (i + 1) % self.page == 0:
                await asyncio.sleep(0)  # the due ones handed so far start their looks
            if key not in self.replaying:
                continue  # a newer event was handed on since
            obj = kept.unpack(packed)
            rank = 0 if kind == kept.DELETED else self.rank(obj)
            ranked[rank] += 1
            if rank == 0:
                self.replaying.discard(key)
                self.dispatcher.submit(watchevents.Event(kind if kind == kept.DELETED else watchevents.LISTED, obj))
                if ranked[0] % self.page == 0:
                    await self.paced()  # as a list does: never every kept object decoded at once
            else:
                held.setdefault(rank, []).append((key, packed))
        self.log.info(
            "%s watch: acting, handing on %d %s(s) kept while standing by (%s)",
            self.what,
            len(entries),
            self.what,
            _by_rank(ranked),
        )
        del entries
        await self._hand_held(held, replay=True)
        self.replaying.clear()

    async def _hand_held(self, held: dict[int, list[tuple[kept.Key, bytes]]], replay: bool) -> None:
        """What a list or a replay held back, by rank, paced as a list is (a replay's: unless a newer event of
        the object was handed on since)."""
        handed = 0
        for rank in sorted(held):
            waiting = held.pop(rank)
            for i, (key, packed) in enumerate(waiting):
                waiting[i] = (key, b"")
                if replay and key not in self.replaying:
                    continue
                self.hand(watchevents.Event(watchevents.LISTED, kept.unpack(packed)))
                handed += 1
                if handed % self.page == 0:
                    await self.paced()

    async def follow(self, follower: Follower) -> None:
        """List (when there is no resourceVersion) and watch, again and again; never raises but CancelledError."""
        while True:
            try:
                if follower.resource_version is None:
                    self.restarts.labels("list").inc()
                    follower.resource_version = await self.list(follower)
                    follower.failures = 0
                began = asyncio.get_running_loop().time()
                seen = await self.watch(follower)
                self.restarts.labels("timeout").inc()
                if seen or asyncio.get_running_loop().time() - began >= QUIET:
                    follower.failures = 0
                    continue
                delay = self._backoff(follower)  # ended at once, with nothing: a proxy, say; do not spin
                self.log.debug(
                    "%s watch %s: ended at once without an event; again in %.1fs", self.what, follower.path, delay
                )
            except watchevents.Expired as error:
                self.restarts.labels("expired").inc()
                self.log.info("%s watch %s: %s; listing again", self.what, follower.path, error)
                follower.resource_version = None
                continue
            except (aiohttp.ClientError, TimeoutError, apiserver.ApiError, ValueError) as error:
                self.restarts.labels("error").inc()
                delay = self._backoff(follower)
                self.log.warning("%s watch %s: %s; again in %.1fs", self.what, follower.path, _describe(error), delay)
            except Exception:  # a bug must not end the watch for good: say it once, back off, go on
                self.restarts.labels("error").inc()
                delay = self._backoff(follower)
                self.log.exception("%s watch %s failed; again in %.1fs", self.what, follower.path, delay)
            await asyncio.sleep(delay)

    def _backoff(self, follower: Follower) -> float:
        delay: float = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0**follower.failures)
        follower.failures += 1
        return delay

    async def list(self, follower: Follower) -> str:
        """Every object on the follower's path, page by page, each handed on; returns the list's resourceVersion.

        An object the watch ranks after the others (:meth:`rank`) is kept compressed and handed on
        once the whole list is read, by rank: a takeover's list of 10,000 Incidents hands on the
        due ones as it reads them and the others after, so a due one late in the list waits for
        the list to be read, not for every Incident before it to be judged (issue 18).

        When the watch :attr:`forgets`, an object the last list or watch showed and this list does
        not (deleted while this replica stood by, or while the watch was down) is handed on as
        DELETED after the list, with its namespace, name and uid: Kubernetes' informers do the same.
        """
        path = follower.path
        pages, count, version = 0, 0, ""
        listed: dict[tuple[str, str], str] = {}
        held: dict[int, list[tuple[kept.Key, bytes]]] = {}
        ranked: collections.Counter[int] = collections.Counter()
        try:
            async for page in self.api.pages(path, self.page):
                items = page.get("items") or ()
                for item in items:
                    event = watchevents.Event(watchevents.LISTED, item)
                    if not self.takes(event):
                        continue
                    if self.forgets:
                        _remember(listed, item)
                    rank = self.rank(item) if self.live() else KEPT
                    ranked[rank] += 1
                    if rank > 0:
                        held.setdefault(rank, []).append((kept.key_of(item), kept.pack(item)))
                    else:
                        self.hand(event)
                pages, count = pages + 1, count + len(items)
                version = str((page.get("metadata") or {}).get("resourceVersion") or "")
                del page, items
                await self.paced()
        except apiserver.ApiError as error:
            if error.status == 410:  # the continue token expired
                raise watchevents.Expired(error.message) from error
            raise
        await self._hand_held(held, replay=False)  # what was held back, once the whole list is read
        self.log.info(
            "%s watch %s: listed %d %ss in %d page(s) (%s), resourceVersion %s",
            self.what,
            path,
            count,
            self.what,
            pages,
            _by_rank(ranked),
            version,
        )
        if not version:
            raise ValueError(f"a list of {path} without a resourceVersion")
        if self.forgets:
            gone = [(key, uid) for key, uid in follower.known.items() if key not in listed]
            follower.known = listed
            for (namespace, name), uid in gone:
                gone_meta = {"namespace": namespace, "name": name, "uid": uid}
                self.hand(watchevents.Event("DELETED", {"metadata": gone_meta}))
            if gone:
                self.log.info("%s watch %s: %d %s(s) gone since the last list", self.what, path, len(gone), self.what)
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
                lines = watchevents.Lines()
                async for chunk in reply.content.iter_chunked(CHUNK):
                    for line in lines.feed(chunk):
                        event = watchevents.decode(line)
                        if event.type == "ERROR":
                            raise watchevents.refusal(event.obj)
                        follower.resource_version = event.resource_version or follower.resource_version
                        if not seen:
                            seen, follower.failures = True, 0
                        if event.type == "BOOKMARK" or not self.takes(event):
                            continue
                        if self.forgets:
                            _remember(follower.known, event.obj, event.type == "DELETED")
                        self.hand(event)
        except apiserver.ApiError as error:
            if error.status == 410:
                raise watchevents.Expired(error.message) from error
            raise
        return seen


def restarts_counter(name: str, what: str) -> prometheus_client.Counter:
    """A watch's restart counter, every reason exported from the start at 0."""
    counter = prometheus_client.Counter(
        name, f"Restarts of the {what} watch, {RESTARTS_HELP}", ["reason"], registry=metrics.REGISTRY
    )
    for reason in REASONS:
        counter.labels(reason)
    return counter


def _by_rank(ranked: collections.Counter[int]) -> str:
    """How many objects of each rank, for a log line: ``at once 12, then 300, then 9000``; ``kept 9312`` for a
    list read while the replica stands by."""
    said = [f"kept {ranked[KEPT]}"] if ranked[KEPT] else []
    if any(r >= 0 for r in ranked):
        said += [f"at once {ranked[0]}", *(f"then {ranked[r]}" for r in sorted(ranked) if r > 0)]
    return ", ".join(said) or "none"


def _remember(known: dict[tuple[str, str], str], obj: cabc.Mapping[str, Any], deleted: bool = False) -> None:
    key = kept.key_of(obj)
    if deleted:
        known.pop(key, None)
    else:
        known[key] = (obj.get("metadata") or {}).get("uid") or ""


def _describe(error: Exception) -> str:
    if isinstance(error, apiserver.ApiError):
        return f"API server answered {error.status}: {error.message}"
    return str(error) or type(error).__name__

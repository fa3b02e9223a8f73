"""What the OOM remediation keeps in memory: caches of what is known recorded, and the resizes it follows.

Only caches, never the truth: after a restart everything here is empty, and the pod watch's
listing hands every OOM-killed pod to the flow again, which reads its Incident.

The resizes followed: after an in-place resize the flow looks at the pod on each of its
changes (``PodResizePending``, ``PodResizeInProgress``, the container's resources), and also
once at the resize's deadline, when nothing need change on the pod (a resize the kubelet keeps
``Deferred`` changes nothing). That look is a timer per pod here, replaced by each plan's
``recheck_at`` and dropped when a plan has none; after a restart the watch's listing starts it
again.
"""

import asyncio
import collections
import collections.abc as cabc
import contextlib
import datetime as dt
import logging

import aiohttp

from oncall_operator.adapters import apiserver, caches, incidents, tasks, workloads

log = logging.getLogger(__name__)
Look = cabc.Callable[[], cabc.Awaitable[None]]


class OomState:
    """``recorded`` holds kill keys known to be in their Incident, so the many status updates of
    a pod that was killed once cost no API call; ``following`` the pods whose in-place resize is
    followed (each with its timer). ``api`` is the hot path's own client (a pool no other loop
    queues on)."""

    def __init__(self, api: apiserver.Api, size: int = 20000) -> None:
        self.api = api
        self.caches: caches.Caches | None = None
        self.owners = workloads.OwnerCache()
        self.recorded = collections.OrderedDict[str, None]()
        self.size = size
        self.following: dict[str, asyncio.Task[None]] = {}

    def known(self, keys: cabc.Iterable[str]) -> bool:
        return all(key in self.recorded for key in keys)

    def remember(self, keys: cabc.Iterable[str]) -> None:
        for key in keys:
            self.recorded[key] = None
            self.recorded.move_to_end(key)
        while len(self.recorded) > self.size:
            self.recorded.popitem(last=False)

    def follow(self, pod_uid: str, at: dt.datetime | None, look: Look) -> None:
        """Look at the pod again at ``at`` (replacing an earlier timer); None: stop following it."""
        old = self.following.pop(pod_uid, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        if at is None or len(self.following) >= self.size:
            return
        delay = max(0.0, (at - dt.datetime.now(dt.UTC)).total_seconds()) + 1.0
        self.following[pod_uid] = asyncio.create_task(self._later(pod_uid, delay, look), name=f"resize {pod_uid}")

    async def _later(self, pod_uid: str, delay: float, look: Look) -> None:
        await asyncio.sleep(delay)
        try:
            await look()
        except (apiserver.ApiError, aiohttp.ClientError, incidents.ConflictsExhausted, OSError, TimeoutError) as error:
            log.warning("looking again at the resized pod %s failed: %r", pod_uid, error)
        finally:
            if self.following.get(pod_uid) is asyncio.current_task():
                del self.following[pod_uid]

    def start_caches(self, scopes: cabc.Sequence[str]) -> None:
        """Start the watches that feed the caches (on the running loop); reads GET until they are in."""
        if self.caches is None:
            self.caches = caches.Caches(scopes)
            self.caches.start(self.api)

    async def close(self) -> None:
        for task in list(self.following.values()):
            with contextlib.suppress(Exception):
                await tasks.cancel(task)
        self.following.clear()
        if self.caches is not None:
            await self.caches.stop()
            self.caches = None
        await self.api.close()

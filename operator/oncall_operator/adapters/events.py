"""Kubernetes Events, posted by the operator's own poster from whichever task wants one.

Every flow explains itself with Events on the object it acted on and on the Incident. Kopf's
``kopf.event`` works only inside the per-object tasks Kopf starts (elsewhere it raises
``LookupError`` and the Event is lost), and the operator's own loops (the pod watch, the
escalation loop, the intake) are not such tasks. So every Event goes through :class:`Poster`:
:meth:`Poster.emit` queues it without waiting (an Event must never hold up a page or a
patch), and one task posts what is queued, one after the other, with the reporting component
from Kopf's settings. The queue is bounded: past :data:`QUEUE_MAX` an Event is dropped and
logged, as a failed post is. Events help; they never hold anything up.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
import logging
from typing import Any

import aiohttp

from oncall_operator.adapters import apiserver, tasks

log = logging.getLogger(__name__)
MAX_MESSAGE = 1024
QUEUE_MAX = 10_000


@dataclasses.dataclass(frozen=True)
class Reporter:
    """Who the Events say reported them (Kopf's posting settings, read once at start-up)."""

    component: str = "oncall-operator"
    instance: str = ""
    name_prefix: str = "oncall-operator-event-"


@dataclasses.dataclass(frozen=True)
class Event:
    ref: dict[str, Any]
    type: str
    reason: str
    message: str


def ref_of(obj: cabc.Mapping[str, Any]) -> dict[str, Any]:
    """The involvedObject reference of ``obj`` (apiVersion, kind, name, namespace, uid)."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion", "v1"),
        "kind": obj.get("kind", ""),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
    }


class Poster:
    """A bounded queue of Events and the task that posts them."""

    def __init__(self, api: apiserver.Api, reporter: Reporter = Reporter()) -> None:
        self.api, self.reporter = api, reporter
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_MAX)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="event poster")

    def emit(self, obj: cabc.Mapping[str, Any], warning: bool, reason: str, text: str) -> None:
        """Queue an Event about ``obj`` (a body, or anything with apiVersion, kind and metadata)."""
        event = Event(ref_of(obj), "Warning" if warning else "Normal", reason, text[:MAX_MESSAGE])
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("Event %s %s about %s dropped: %d Events queued", event.type, reason, event.ref, QUEUE_MAX)

    async def _run(self) -> None:
        while True:
            await self._send(await self.queue.get())

    async def _send(self, event: Event) -> None:
        try:
            await self.post(event)
        except (apiserver.ApiError, aiohttp.ClientError, TimeoutError) as error:
            log.warning("Event %s %s about %s not posted: %s", event.type, event.reason, event.ref, error)

    async def post(self, event: Event) -> None:
        namespace = event.ref.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC).isoformat()
        body = {
            "metadata": {"namespace": namespace, "generateName": self.reporter.name_prefix},
            "action": "Action?",
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "reportingComponent": self.reporter.component,
            "reportingInstance": self.reporter.instance,
            "source": {"component": self.reporter.component},
            "involvedObject": {**event.ref, "namespace": namespace},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": now,
        }
        await self.api.call("POST", f"/api/v1/namespaces/{namespace}/events", body)

    async def close(self) -> None:
        """Stop, then post what is still queued (the last remediations' Events)."""
        await tasks.cancel(self.task)
        self.task = None
        while not self.queue.empty():
            await self._send(self.queue.get_nowait())

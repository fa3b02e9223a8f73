"""Kubernetes Events from tasks Kopf did not start (the operator's own loops, e.g. the pod watch).

``kopf.event``/``kopf.info``/``kopf.warn`` put an Event on a queue that Kopf's poster drains, and
Kopf binds that queue (two context variables) only inside its own per-object tasks: called from
any other task they raise ``LookupError`` and the Event is lost. Code that posts Events (the
executor, through :func:`workloads.post_event`) must not care who runs it, so a loop of the
operator's own binds a queue of this module's in its context (:meth:`Poster.bind`) and this
poster sends what arrives there, one Event after the other, as Kopf's poster would (same body,
same reporting component from Kopf's settings). A failed post is logged and dropped, as Kopf
does: Events help, they never hold anything up.

The two context variables are Kopf internals (``kopf._core.engines.posting``, unchanged from
1.35 to 1.45); an import here fails at start-up, loudly, if a Kopf upgrade moves them.
"""

import asyncio
import contextvars
import datetime as dt
import logging
from collections.abc import Coroutine
from typing import Any

import aiohttp
import kopf
from kopf._core.engines import posting

from oncall_operator.adapters import workloads

log = logging.getLogger(__name__)
MAX_MESSAGE = 1024


class Poster:
    """A queue for ``kopf.event`` outside Kopf's tasks, and the task that posts what it holds."""

    def __init__(self, api: workloads.Api, settings: kopf.OperatorSettings) -> None:
        self.api, self.settings = api, settings
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def bind(self) -> None:
        """Make ``kopf.event`` in this context (and the tasks it creates later) post through here."""
        posting.event_queue_loop_var.set(asyncio.get_running_loop())
        posting.event_queue_var.set(self.queue)
        if self.task is None:
            self.task = asyncio.create_task(self.run(), name="event poster")

    async def run(self) -> None:
        while True:
            await self._send(await self.queue.get())

    async def _send(self, event: Any) -> None:
        try:
            await self.post(event.ref, event.type, event.reason, event.message)
        except (workloads.ApiError, aiohttp.ClientError, TimeoutError) as error:
            log.warning("Event %s %s about %s not posted: %s", event.type, event.reason, event.ref, error)

    async def post(self, ref: dict[str, Any], type_: str, reason: str, message: str) -> None:
        namespace = ref.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC).isoformat()
        component = self.settings.posting.reporting_component
        body = {
            "metadata": {"namespace": namespace, "generateName": self.settings.posting.event_name_prefix},
            "action": "Action?",
            "type": type_,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "reportingComponent": component,
            "reportingInstance": self.settings.posting.reporting_instance,
            "source": {"component": component},
            "involvedObject": {**ref, "namespace": namespace},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": now,
        }
        await self.api.call("POST", f"/api/v1/namespaces/{namespace}/events", body)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> "asyncio.Task[None]":
        """Run ``coro`` as a task whose ``kopf.event`` calls post through here."""
        context = contextvars.copy_context()
        context.run(self.bind)
        return asyncio.create_task(coro, name=name, context=context)

    async def close(self) -> None:
        """Stop, then post what is still queued (the last remediations' Events)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        while not self.queue.empty():
            await self._send(self.queue.get_nowait())

"""The operator's own list+watch of Pods for OOM kills: it keeps a resourceVersion and nothing else.

Kopf's pod watch cost 349 MiB steady, 427 MiB peak at 10,000 pods (kwok bench) against a target
of 150 MiB: Kopf lists every pod in one unpaginated response (one huge JSON decoded at once, which
fragments the heap) and keeps per-object state and a worker for every pod before a ``when=``
filter can drop it. Here (:mod:`.listwatch`: pages, resumed watches, 410, backoff, acting only
while this replica acts) a pod is a dict for as long as it takes :func:`oom.has_oom` to look at
its status; only OOM-killed pods are handed on, and nothing about any pod is kept afterwards.

OOM-killed pods on a list are handed on too: a kill that happened while the operator was down,
or standing by, must be handled (the executor counts each kill once, by its Incident).

Each OOM pod is handled in a task of its own (the reader never waits for a remediation), at most
``concurrency`` at a time, one at a time per pod (a newer event of a pod whose remediation is
running replaces any older one waiting: the newest status says everything the older did).
"""

import collections.abc as cabc
import logging
from typing import Any

from oncall_operator.adapters import apiserver, listwatch, watchevents
from oncall_operator.domain import oom

log = logging.getLogger(__name__)
Pod = dict[str, Any]
Handle = cabc.Callable[[Pod], cabc.Awaitable[None]]

RESTARTS = listwatch.restarts_counter("oncall_pod_watch_restarts", "pod")


class PodWatch(listwatch.ListWatch):
    """Lists and watches pods while this replica acts, and hands every OOM-killed pod in scope to ``handle``."""

    def __init__(
        self,
        api: apiserver.Api,
        patterns: cabc.Sequence[str],
        handle: Handle,
        concurrency: int = 32,
        page: int = apiserver.PAGE,
        server_timeout: int = listwatch.SERVER_TIMEOUT,
    ) -> None:

        async def one(event: watchevents.Event) -> None:
            await handle(event.obj)

        dispatcher = watchevents.Dispatcher(one, concurrency, "OOM")
        super().__init__(
            api, listwatch.paths(patterns), patterns, dispatcher, "pod", RESTARTS, log, page, server_timeout
        )

    def wants(self, event: watchevents.Event) -> bool:
        """A pod that shows an OOM kill; every other is forgotten at once."""
        return oom.has_oom(event.obj.get("status"))

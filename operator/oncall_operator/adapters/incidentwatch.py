"""The operator's own list+watch of Incidents: every event to one handler, one Incident at a time.

Kopf watched Incidents until issue 18 measured what that cost with 10,000 open: Kopf's per-event
processing was 11-12 % of the operator's CPU in an alert storm, and its listing held every listed
Incident decoded at once in its per-object queues. Python's allocator never gave that peak back:
a replica that had just listed 9,949 Incidents held 138 MiB of small-object arenas with 75 MiB in
use. Here (:mod:`.listwatch`) the list hands over one page at a time and waits, between pages,
until fewer than :data:`PACE` Incidents are being handled; the watch's events go to the handler
at once, each Incident's in order (a newer event replaces an older one still waiting, as Kopf's
batching did), with no bound on how many Incidents are handled at once: a look held up by a slow
channel must not hold up another Incident's event.

Nothing is stored on an Incident to follow it (no finalizer, no annotation), so an Incident can
be deleted while no operator runs: the next list hands on, as DELETED, each Incident known before
and no longer listed. An event out of the operator's scope (a cluster-wide list filtered by glob
patterns) is dropped by the shared watch.

It lists and watches while this replica stands by too, and keeps what it shows (compressed,
:mod:`.kept`): a takeover hands that on at once, what may page first, instead of listing then
(issue 18: the list was 15 s of a 29 s takeover with 10,000 open). Nothing is handed on before
``ready`` (the executor's: Kopf's indices of Schedules, Policies and Runbooks filled), which Kopf
fills only once this replica acts.
"""

import collections.abc as cabc
import logging
from typing import Any

from oncall_operator.adapters import apiserver, listwatch, watchevents
from oncall_operator.api import GROUP, VERSION, kinds

log = logging.getLogger(__name__)
PACE = 256
"""Incidents a list lets be handled at once before it asks for its next page."""

RESTARTS = listwatch.restarts_counter("oncall_incident_watch_restarts", "incident")


class IncidentWatch(listwatch.ListWatch):
    """Lists and watches Incidents in scope while this replica acts, and hands each event to ``handle``.

    An Incident deleted while this replica stood by is handed on as DELETED after the next list.
    """

    forgets = True
    follows_standing_by = True

    def __init__(
        self,
        api: apiserver.Api,
        patterns: cabc.Sequence[str],
        handle: watchevents.Handle,
        ready: cabc.Callable[[], cabc.Awaitable[None]],
        rank: cabc.Callable[[cabc.Mapping[str, Any]], int] | None = None,
        page: int = apiserver.PAGE,
        server_timeout: int = listwatch.SERVER_TIMEOUT,
    ) -> None:
        where = listwatch.paths(patterns, f"/apis/{GROUP}/{VERSION}", kinds.INCIDENT.plural)
        dispatcher = watchevents.Dispatcher(handle, None, "Incident")
        super().__init__(api, where, patterns, dispatcher, "incident", RESTARTS, log, page, server_timeout)
        self._ready, self._rank = ready, rank

    async def ready(self) -> None:
        await self._ready()

    def rank(self, obj: cabc.Mapping[str, Any]) -> int:
        return self._rank(obj) if self._rank is not None else 0

    async def paced(self) -> None:
        await self.dispatcher.below(PACE)

"""Who goes first to the API server when the operator's own requests queue: pages and remediations before new alerts.

In an alert storm the API server, not the operator, is the bottleneck (issue 18: on 2 cores
shared with it, 10,000 alerts at 50/s). Every request went straight to the connection pool, so
a level-2 page that fell due waited behind the intake's writes for new Incidents: measured, half
of them more than 30 s late while the storm lasted, and the p99 67 s. An escalation of an
Incident somebody has not acknowledged must not wait for the next new alert; a new alert that
waits too long is refused with 503 and ``Retry-After`` by the intake (Alertmanager sends it
again), so nothing is lost by making it wait.

:class:`Turns` lets at most ``size`` requests be in flight; when one ends, a waiting urgent
request takes its turn before any other. A request is urgent when the task making it runs
inside :func:`urgent` (a context variable: each task carries its own). Without a queue nothing
waits: the turn is taken at once.
"""

import asyncio
import collections
import collections.abc as cabc
import contextlib
import contextvars

URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("oncall_urgent", default=False)
"""Whether the current task's requests go before the others when they queue."""


@contextlib.contextmanager
def urgent() -> cabc.Iterator[None]:
    """The requests made inside go before the non-urgent ones waiting for a turn."""
    token = URGENT.set(True)
    try:
        yield
    finally:
        URGENT.reset(token)


class Turns:
    """At most ``size`` requests in flight; a freed turn goes to the first urgent waiter, else to the first other."""

    def __init__(self, size: int) -> None:
        self.size, self.busy = size, 0
        self.waiting: dict[bool, collections.deque[asyncio.Future[None]]] = {
            True: collections.deque(),
            False: collections.deque(),
        }

    @contextlib.asynccontextmanager
    async def take(self) -> cabc.AsyncIterator[None]:
        """Wait for a turn (urgent ones first, see :data:`URGENT`), hold it inside, and hand it on after."""
        if self.busy < self.size:
            self.busy += 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue = self.waiting[URGENT.get()]
            queue.append(waiter)
            try:
                await waiter  # the turn is handed over by :meth:`_free`: ``busy`` already counts it
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._free()  # handed a turn, then cancelled before using it: on to the next
                else:
                    with contextlib.suppress(ValueError):  # already taken off by :meth:`_free`
                        queue.remove(waiter)
                raise
        try:
            yield
        finally:
            self._free()

    def waiters(self) -> int:
        return sum(len(q) for q in self.waiting.values())

    def _free(self) -> None:
        for queue in (self.waiting[True], self.waiting[False]):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self.busy -= 1

"""What the tests of the operator's own watches share: a watch run in the test's loop, and waiting on conditions.

``test_pod_watch.py`` and ``test_incident_watch.py`` run a :class:`~oncall_operator.adapters.listwatch.ListWatch`
in the test's own event loop against the real API server, and wait on conditions, never on time.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from oncall_operator.adapters import apiserver, listwatch

WAIT = 30.0
"""A deadline for what must come, never a measure of how fast it came."""


@contextlib.asynccontextmanager
async def running(
    watch: listwatch.ListWatch, close: Callable[[], Awaitable[None]], api: apiserver.Api
) -> AsyncIterator[None]:
    """The watch's :meth:`run` in a task; afterwards the task cancelled, ``close`` awaited, the session closed."""
    task = asyncio.create_task(watch.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await close()
        await api.close()


async def until(probe: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not probe():
            await asyncio.sleep(0.05)
    assert probe(), what

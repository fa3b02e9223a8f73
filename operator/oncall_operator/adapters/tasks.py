"""Stopping the operator's background tasks the one way: cancel, wait, and swallow only the cancellation.

Every long-running task (the pod watch, the escalation loop, the Event poster, the peering
observer) is stopped at shut-down; an exception other than the cancellation still surfaces.
"""

import asyncio
import contextlib
from typing import Any


async def cancel(task: "asyncio.Task[Any] | None") -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

"""A watch stream's events, and their dispatch to handlers one object at a time.

:class:`Lines` splits a stream into lines whatever the chunk boundaries (aiohttp's ``readline``
refuses lines over 64 KiB, and one object with big annotations can be larger); :func:`decode`
reads one line as an :class:`Event`. :class:`Dispatcher` runs each object's events in a task of
its own (the reader never waits for a handler), one at a time per object; a newer event of an
object whose handler runs replaces any older one waiting (the newest body says everything the
older did). :mod:`.listwatch` reads the stream; the caches' watches decode with the same pieces.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import logging
from typing import Any

import pydantic_core

from oncall_operator.adapters import apiserver

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class Expired(Exception):
    """The resourceVersion (or a list's continue token) is too old: list again from scratch."""


@dataclasses.dataclass(frozen=True)
class Event:
    """One watch event: its type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR; LISTED from a list) and its object."""

    type: str
    obj: dict[str, Any]

    @property
    def resource_version(self) -> str | None:
        return (self.obj.get("metadata") or {}).get("resourceVersion") or None

    @property
    def key(self) -> str:
        meta = self.obj.get("metadata") or {}
        return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


Handle = cabc.Callable[[Event], cabc.Awaitable[None]]
LISTED = "LISTED"
"""The type of an object handed on from a list (not a watch event): it may be new, or known already."""


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
    found = pydantic_core.from_json(line)  # Rust: faster than json.loads; ValueError on a bad line too
    kind, obj = (found.get("type"), found.get("object")) if isinstance(found, dict) else (None, None)
    if not isinstance(kind, str) or not isinstance(obj, dict):
        raise ValueError(f"not a watch event: {line[:200]!r}")
    return Event(kind, obj)


class Dispatcher:
    """Hands each event to ``handle`` in a task, one at a time per object; keeps the tasks so they can be cancelled.

    ``concurrency`` bounds the handlers running at once (None: no bound, as Kopf's own workers);
    ``what`` names them in the log line of a failure.
    """

    def __init__(self, handle: Handle, concurrency: int | None, what: str) -> None:
        self.handle, self.what = handle, what
        self.slots = asyncio.Semaphore(concurrency) if concurrency else None
        self.tasks: set[asyncio.Task[None]] = set()
        self.busy: set[str] = set()
        self.waiting: dict[str, Event] = {}
        self.freed = asyncio.Event()

    def submit(self, event: Event) -> None:
        key = event.key
        if key in self.busy:
            self.waiting[key] = event  # the newest event replaces an older one not yet handled
            return
        self.busy.add(key)
        meta = event.obj.get("metadata") or {}
        name = f"{self.what} {meta.get('namespace')}/{meta.get('name')}"
        task = asyncio.create_task(self._run(key, event), name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def below(self, count: int) -> None:
        """Return once fewer than ``count`` objects are being handled or wait for it."""
        while len(self.busy) >= count:
            self.freed.clear()
            await self.freed.wait()

    async def _run(self, key: str, event: Event | None) -> None:
        try:
            while event is not None:
                try:
                    if self.slots is None:
                        await self.handle(event)
                    else:
                        async with self.slots:
                            await self.handle(event)
                except Exception:
                    meta = event.obj.get("metadata") or {}
                    log.exception("%s %s/%s: handling failed", self.what, meta.get("namespace"), meta.get("name"))
                event = self.waiting.pop(key, None)
        finally:
            self.busy.discard(key)
            self.waiting.pop(key, None)
            self.freed.set()

    async def close(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def refusal(status: cabc.Mapping[str, Any]) -> apiserver.ApiError:
    """An ERROR event's Status as the error it is (410 Gone: the resourceVersion is too old)."""
    code = int(status.get("code") or 500)
    return apiserver.ApiError(code, str(status.get("message") or status.get("reason") or "watch error"))

"""Hands the heap memory the operator has freed back to the OS, so that its RSS falls after a storm.

An alert storm, or the listing of thousands of open Incidents after a takeover, decodes many large
JSON bodies at once. Python frees them, but glibc's malloc keeps freed pages in its heap for reuse,
and the process's RSS (what the chart's memory limit and an OOM kill count) never goes down.
Measured on a leader with 9,949 open Incidents (issue 18): ``malloc_trim(0)`` gave back 26 of its
240 MiB, and 11 of 218 MiB on a replica that had just listed them. :func:`every` trims once a
minute; a trim walks only the heap's free lists. On a C library without ``malloc_trim`` (musl,
macOS) nothing is trimmed and nothing fails.
"""

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
SECONDS = 60.0
"""Seconds between two trims."""


def _load() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load()


def trim() -> bool:
    """Give the heap's free pages back to the OS; whether any were (False where there is no malloc_trim)."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


async def every(seconds: float = SECONDS) -> None:
    """Trim every ``seconds``, until cancelled."""
    if _LIBC is None:
        log.info("no malloc_trim in this C library: freed heap memory stays with the process")
        return
    while True:
        await asyncio.sleep(seconds)
        trim()

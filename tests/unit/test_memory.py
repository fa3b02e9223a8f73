"""The heap's trim: freed memory below a live allocation goes back to the OS only when trimmed."""

import asyncio
import pathlib

import pytest

from oncall_operator.adapters import memory

MIB = 1024 * 1024


def rss() -> int:
    status = pathlib.Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))


@pytest.mark.skipif(memory._LIBC is None, reason="no malloc_trim in this C library")
def test_a_trim_gives_back_the_freed_pages_that_free_alone_keeps() -> None:
    blocks = [bytes([i % 251]) * 3000 for i in range(20_000)]  # ~60 MiB of heap chunks (under the mmap threshold)
    pin = bytes([7]) * 3000  # allocated above them (at run time): free() alone cannot shrink the heap past it
    full = rss()
    del blocks
    kept = rss()
    assert full - kept < 20 * MIB, "free() alone keeps the pages in the heap"
    assert memory.trim()
    assert kept - rss() > 20 * MIB, "the trim gave them back to the OS"
    assert pin


@pytest.mark.skipif(memory._LIBC is None, reason="no malloc_trim in this C library")
def test_the_loop_trims_until_cancelled() -> None:
    async def run() -> None:
        task = asyncio.create_task(memory.every(0.01))
        await asyncio.sleep(0.05)
        assert not task.done(), "it keeps trimming"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())

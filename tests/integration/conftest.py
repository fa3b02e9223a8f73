"""Fixtures the notifier tests share: the local provider peers and an HTTP session."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import test_utils

from tests.peers import Peer, build_app


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    ref: list[Peer] = []
    server = test_utils.TestServer(build_app(ref), host="127.0.0.1")
    ref.append(Peer(server))
    await server.start_server()
    try:
        yield ref[0]
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s

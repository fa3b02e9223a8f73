"""The API server's one-shot requests over kept-alive HTTP/1.1 connections (:mod:`oncall_operator.adapters.http1`).

Against a real socket server in the test's loop that answers as scripted: by length and chunked,
a connection kept and reused, one closed by the server while idle (the request goes again on a
new one), one that breaks after its answer began (never sent twice), garbage, silence (the
deadline), a header that would smuggle a second request, and the bound on connections. The
client against the real API server is what every e2e test runs.
"""

import asyncio
import collections.abc as cabc
import contextlib

import aiohttp
import kubernetes
import pytest

from oncall_operator.adapters import apiserver, http1, kube

Script = cabc.Callable[[bytes, int], bytes | None]
"""(the request as read, its number on this connection) -> the raw answer, or None to close without one.
An answer ending in :data:`CLOSE` is sent without it, and the connection closed after it."""
CLOSE = b"<close>"


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


class Server:
    """A socket server: reads each request (head and Content-Length body) and answers per ``script``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.hold = asyncio.Event()
        self.hold.set()

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            for n in range(1000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(
                    (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), 0
                )
                self.requests.append(head + await reader.readexactly(length))
                await self.hold.wait()
                answer = self.script(head, n)
                if answer is None:
                    return
                writer.write(answer.removesuffix(CLOSE))
                await writer.drain()
                if answer.endswith(CLOSE):
                    return
        finally:
            self.open_now -= 1
            writer.close()


@contextlib.asynccontextmanager
async def pool(
    script: Script, timeout: float = 30.0, limit: int = 100
) -> cabc.AsyncIterator[tuple[http1.Pool, Server]]:
    async with Server(script) as server:
        client = http1.Pool("127.0.0.1", server.port, None, timeout, limit)
        try:
            yield client, server
        finally:
            await client.close()


async def test_answers_by_length_and_chunked_come_whole_over_one_kept_connection() -> None:
    chunked = (
        b'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3;x=1\r\n 1}\r\n0\r\nT: 1\r\n\r\n'
    )
    answers = [ok(b'{"kind":"Incident"}'), chunked, b"HTTP/1.1 204 No Content\r\n\r\n"]
    async with pool(lambda head, n: answers[n]) as (client, server):
        first = await client.request("GET", "/apis/x?limit=1", {"Accept": "application/json"})
        second = await client.request("POST", "/apis/x", {}, b'{"b":1}')
        third = await client.request("DELETE", "/apis/x/y", {})
    assert (first.status, first.body) == (200, b'{"kind":"Incident"}')
    assert (second.status, second.body) == (201, b'{"a": 1}')
    assert (third.status, third.body) == (204, b"")
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /apis/x?limit=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert server.requests[1].endswith(b'Content-Length: 7\r\n\r\n{"b":1}')


async def test_a_connection_the_server_closed_while_idle_costs_a_new_one_not_an_error() -> None:
    async with pool(lambda head, n: ok(b"{}", "Connection: keep-alive\r\n") if n == 0 else None) as (client, server):
        await client.request("GET", "/a", {})
        again = await client.request("PUT", "/a", {}, b"{}")  # the kept one closes unanswered: a new one answers
    assert again.status == 200
    assert server.connections == 2
    assert [r.split(b" ")[0] for r in server.requests] == [b"GET", b"PUT", b"PUT"]


async def test_an_answer_that_breaks_once_begun_fails_and_is_never_sent_again() -> None:
    async with pool(lambda head, n: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{" + CLOSE) as (client, server):
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.request("PUT", "/a", {}, b"{}")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", b"HTTP/1.1 2x OK\r\n\r\n"],
)
async def test_garbage_is_a_connection_error(answer: bytes) -> None:
    async with pool(lambda head, n: answer) as (client, _):
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.request("GET", "/a", {})


async def test_an_answer_closed_by_the_server_without_a_length_is_read_to_its_end() -> None:
    answers = iter([b"HTTP/1.0 200 OK\r\n\r\n{}" + CLOSE, ok(b"[]")])
    async with pool(lambda head, n: next(answers)) as (client, server):
        first = await client.request("GET", "/a", {})
        second = await client.request("GET", "/a", {})
    assert (first.body, second.body) == (b"{}", b"[]")
    assert server.connections == 2  # the first was not kept


async def test_a_silent_server_is_a_timeout() -> None:
    async with pool(lambda head, n: ok(b"{}"), timeout=0.3) as (client, server):
        server.hold.clear()
        with pytest.raises(TimeoutError):
            await client.request("GET", "/a", {})
        server.hold.set()


async def test_a_header_holding_a_line_break_is_refused_before_anything_is_sent() -> None:
    async with pool(lambda head, n: ok(b"{}")) as (client, server):
        with pytest.raises(ValueError, match="line break"):
            await client.request("GET", "/a", {"Authorization": "Bearer x\r\nGET /smuggled HTTP/1.1"})
        with pytest.raises(ValueError, match="line break"):
            await client.request("GET", "/a HTTP/1.1\r\nX: y", {})
    assert server.requests == []


async def test_requests_beyond_the_limit_wait_for_a_connection() -> None:
    async with pool(lambda head, n: ok(b"{}"), limit=2) as (client, server):
        server.hold.clear()
        waiting = [asyncio.create_task(client.request("GET", f"/{i}", {})) for i in range(6)]
        while len(server.requests) < 2:
            await asyncio.sleep(0.01)
        server.hold.set()
        answers = await asyncio.gather(*waiting)
    assert [a.status for a in answers] == [200] * 6
    assert server.most_open <= 2 and len(server.requests) == 6


async def test_a_closed_pool_opens_nothing() -> None:
    async with pool(lambda head, n: ok(b"{}")) as (client, server):
        await client.close()
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.request("GET", "/a", {})
    assert server.connections == 0


async def test_the_api_client_sends_its_requests_under_the_servers_path_with_its_credentials() -> None:
    """A kubeconfig's server may carry a path (a proxy in front of several clusters): every request goes under it."""
    answers = iter([ok(b'{"kind":"Incident"}'), b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}"])
    async with Server(lambda head, n: next(answers)) as server:
        config = kubernetes.client.Configuration(host=f"http://127.0.0.1:{server.port}/clusters/c-1/")
        config.api_key = {"authorization": "Bearer s3cret"}
        api = apiserver.Api(kube.Kube(kubernetes.client.ApiClient(config)))
        try:
            found = await api.call("PUT", "/apis/oncall.dev/v1alpha1/x", {"a": 1}, labelSelector="app=web")
            missing = await api.call("GET", "/apis/oncall.dev/v1alpha1/y")
        finally:
            await api.close()
    assert found == {"kind": "Incident"} and missing is None
    put, get = server.requests
    assert put.startswith(b"PUT /clusters/c-1/apis/oncall.dev/v1alpha1/x?labelSelector=app%3Dweb HTTP/1.1\r\n")
    headers = dict(h.split(b": ", 1) for h in put.split(b"\r\n\r\n")[0].split(b"\r\n")[1:])
    sent = {name.lower(): value for name, value in headers.items()}
    assert sent[b"authorization"] == b"Bearer s3cret" and sent[b"user-agent"] == b"oncall-operator"
    assert put.endswith(b'\r\n\r\n{"a":1}')
    assert get.startswith(b"GET /clusters/c-1/apis/oncall.dev/v1alpha1/y HTTP/1.1\r\n")

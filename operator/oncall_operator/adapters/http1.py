"""The API server's one-shot requests over a small pool of kept-alive HTTP/1.1 connections.

An alert costs the operator about five requests to the API server (the create, the opening
write, the outcome, and a later level's claim and outcome), and aiohttp's client took ~300 µs
of CPU for each, TLS included, while a plain request on an asyncio stream takes ~130 µs
(measured side by side against one TLS server in another process; issue 18: a fifth of the
operator's CPU in an alert storm was aiohttp's client). :class:`Pool` does only what the API server's
answers need: a status line, headers, a body by ``Content-Length`` or chunked. The watches keep
aiohttp (:meth:`~oncall_operator.adapters.apiserver.Api.stream`), and so does a configured proxy.

Failures are aiohttp's own exceptions (a connection that fails, closes or answers garbage is an
``aiohttp.ClientConnectionError``; the deadline is a ``TimeoutError``), so every caller handles
them as before. A kept connection the server closed while idle fails on its next request
before any answer: that request is sent once more on a new connection. Sending it again is
safe for every request the operator makes: each write carries a precondition (a
resourceVersion, a JSON patch's ``test``) or a fixed name, so a repeat is a 409, a 422 or a
404, which its caller already handles as a stale copy.
"""

import asyncio
import collections.abc as cabc
import contextlib
import dataclasses
import ssl

import aiohttp

LIMIT = 100
"""Connections at most, as aiohttp's connector allowed: a request beyond them waits for one."""
LINE = 65536
"""Bytes of a status or header line at most (asyncio's stream limit)."""


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class Broken(aiohttp.ClientConnectionError):
    """The connection failed, closed, or answered something that is not HTTP/1.1."""


@dataclasses.dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Kept-alive connections to one server (``host``:``port``, TLS when ``context`` is given)."""

    def __init__(
        self, host: str, port: int, context: ssl.SSLContext | None, timeout: float, limit: int = LIMIT
    ) -> None:
        self.host, self.port, self.context, self.timeout = host, port, context, timeout
        self.authority = host if (port == 443 and context) or (port == 80 and not context) else f"{host}:{port}"
        self.idle: list[_Connection] = []
        self.gate = asyncio.Semaphore(limit)
        self.closed = False

    async def request(
        self, method: str, target: str, headers: cabc.Mapping[str, str], body: bytes | None = None
    ) -> Answer:
        """Send one request and read its whole answer within the pool's timeout."""
        head = _head(method, target, self.authority, headers, body)
        async with asyncio.timeout(self.timeout), self.gate:
            while self.idle:
                kept = self.idle.pop()
                if not kept.usable():
                    kept.close()
                    continue
                try:
                    return await self._exchange(kept, head, body)
                except _Unanswered:
                    continue  # closed by the server while idle: a new connection next
            return await self._exchange(await self._connect(), head, body, fresh=True)

    async def _connect(self) -> _Connection:
        if self.closed:
            raise Broken("the client is closed")
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.context, server_hostname=self.host if self.context else None, limit=LINE
            )
        except OSError as error:
            raise Broken(f"cannot connect to {self.authority}: {error}") from error
        return _Connection(reader, writer)

    async def _exchange(self, conn: _Connection, head: bytes, body: bytes | None, fresh: bool = False) -> Answer:
        answered = False
        try:
            conn.writer.write(head + body if body else head)
            await conn.writer.drain()
            line = await conn.reader.readuntil(b"\r\n")
            answered = True
            answer, keep = await _read(conn.reader, line)
        except BaseException as error:
            conn.close()
            if isinstance(error, OSError | asyncio.IncompleteReadError | asyncio.LimitOverrunError | ValueError):
                if not answered and not fresh:
                    raise _Unanswered from error
                raise Broken(f"{self.authority}: {error!r}") from error
            raise
        if keep and not self.closed:
            self.idle.append(conn)
        else:
            conn.close()
        return answer

    async def close(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(OSError, ssl.SSLError):
                await conn.writer.wait_closed()


class _Unanswered(Exception):
    """A kept connection failed before any answer: the request goes again on a new one."""


def _head(method: str, target: str, authority: str, headers: cabc.Mapping[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    if any(c in line for line in lines for c in "\r\n\0"):
        raise ValueError("a request line or header holds a line break")  # never a second request smuggled in
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read(reader: asyncio.StreamReader, line: bytes) -> tuple[Answer, bool]:
    """The answer whose status ``line`` was read, and whether the connection may be kept."""
    version, _, rest = line.partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(rest) < 3 or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP/1.1 status line: {line[:80]!r}")
    status = int(rest[:3])
    length: int | None = None
    chunked, keep = False, version == b"HTTP/1.1"
    while (header := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, sep, value = header.partition(b":")
        if not sep:
            raise ValueError(f"not a header line: {header[:80]!r}")
        key, value = name.strip().lower(), value.strip()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = value.lower().endswith(b"chunked")
        elif key == b"connection":
            keep = keep and value.lower() != b"close"
    if chunked:
        return Answer(status, await _chunks(reader)), keep
    if length is not None:
        return Answer(status, await reader.readexactly(length) if length else b""), keep
    if status in (204, 304) or 100 <= status < 200:
        return Answer(status, b""), keep
    return Answer(status, await reader.read()), False  # until the server closes it


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk without its line end")

"""The operator's async client of the API server, authenticated like the official client.

One-shot requests go over kept-alive HTTP/1.1 connections of the operator's own
(:mod:`.http1`: less than half aiohttp's CPU per request); the watches, and every request when a
proxy is configured, over one aiohttp session.

Everything on the operator's hot paths (the OOM remediation, the intake, the escalation's
status writes, the watches) goes through here rather than the official client in worker
threads: measured, four parallel reads cost ~9 ms of CPU through the threaded client (the GIL
serialises its heavy request and response handling) and ~1 ms through aiohttp. Host, TLS and
credentials come from the official client's ``Configuration`` (``Kube.connect``), whose
``auth_settings()`` also runs its token-refresh hook, so both clients authenticate the same way.
Every request has a timeout (30 s in all; a watch sets its own), so nothing waits forever on a
black-holed API server. Objects are plain dicts, as the domain reads them.
"""

import collections.abc as cabc
import contextlib
import json
import logging
import ssl
import urllib.parse
from typing import Any, cast

import aiohttp
import kubernetes
import pydantic_core
import urllib3

from oncall_operator.adapters import http1, kube

AGENT = "oncall-operator"
"""The user agent, which the API server also takes as the field manager of our writes."""
PAGE = 500
"""Objects per page of every list the operator makes (its own and Kopf's): never one unbounded answer."""


TIMEOUT = 30.0
"""Seconds a request may take in all (a watch sets its own)."""


def _pool(host: str, context: ssl.SSLContext | bool) -> http1.Pool:
    """The kept-alive connections for one-shot requests (:mod:`.http1`), to the configured server."""
    url = urllib.parse.urlsplit(host)
    tls = url.scheme == "https"
    port = url.port or (443 if tls else 80)
    verified = context if isinstance(context, ssl.SSLContext) else None
    if tls and verified is None:  # verify_ssl off, as aiohttp's ssl=False: encrypted, not verified
        verified = ssl.create_default_context()
        verified.check_hostname, verified.verify_mode = False, ssl.CERT_NONE
    return http1.Pool(url.hostname or "localhost", port, verified if tls else None, TIMEOUT)


class ApiError(Exception):
    """A refusal from the API server: its status code and its own words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Api:
    """The API server's client: a pool of kept-alive connections and an aiohttp session, authenticated alike."""

    def __init__(self, k: kube.Kube, agent: str = AGENT) -> None:
        self.config = k.api.configuration
        context: ssl.SSLContext | bool = False
        if self.config.verify_ssl:
            context = ssl.create_default_context(cafile=self.config.ssl_ca_cert)
            if self.config.cert_file:
                context.load_cert_chain(self.config.cert_file, self.config.key_file)
        self.session = aiohttp.ClientSession(
            base_url=self.config.host.rstrip("/") + "/",
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            headers={"User-Agent": agent, "Accept": "application/json"},
        )
        self.agent = agent
        self.pool = None if self.config.proxy else _pool(self.config.host, context)
        self.prefix = urllib.parse.urlsplit(self.config.host).path.rstrip("/")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        await self.session.close()

    def _headers(self) -> dict[str, str]:
        settings = self.config.auth_settings()  # runs the client's refresh hook for expiring tokens
        return {s["key"]: s["value"] for s in settings.values() if s.get("in") == "header" and s.get("value")}

    async def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **params: str
    ) -> dict[str, Any] | None:
        """The response object, or None for 404 on a read; ApiError for any other refusal."""
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = pydantic_core.to_json(body)  # 4x faster than json.dumps (issue 18: JSON was 15 % of a storm's CPU)
        if self.pool is not None:
            target = f"{self.prefix}/{path.lstrip('/')}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
            sent = {"User-Agent": self.agent, "Accept": "application/json", **headers}
            answer = await self.pool.request(method, target, sent, data)
            status, raw = answer.status, answer.body
        else:
            async with self.session.request(
                method, path.lstrip("/"), data=data, params=params, headers=headers, proxy=self.config.proxy
            ) as reply:
                status, raw = reply.status, await reply.read()
        if status == 404 and method == "GET":
            return None
        if status >= 400:
            raise ApiError(status, _message(raw.decode(errors="replace"), status))
        return cast(dict[str, Any], pydantic_core.from_json(raw)) if raw else {}

    async def pages(self, path: str, limit: int = PAGE, selector: str = "") -> cabc.AsyncIterator[dict[str, Any]]:
        """A list of ``path`` page by page (``items``, and ``metadata`` with the list's resourceVersion on
        the last), of the objects matching the label ``selector`` if one is given; ApiError on refusal (404
        when the kind is not served, 410 when a continue token expired)."""
        token = ""
        while True:
            asked = {"limit": str(limit), **({"labelSelector": selector} if selector else {})}
            if token:
                asked["continue"] = token
            page = await self.call("GET", path, **asked)
            if page is None:
                raise ApiError(404, f"{path} is not served")
            yield page
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, timeout: aiohttp.ClientTimeout, **params: str
    ) -> cabc.AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose body the caller reads as it arrives (a watch), with a timeout of its own; ApiError on refusal."""
        async with self.session.get(
            path.lstrip("/"), params=params, headers=self._headers(), proxy=self.config.proxy or None, timeout=timeout
        ) as reply:
            if reply.status >= 400:
                raise ApiError(reply.status, _message(await reply.text(), reply.status))
            yield reply


UNAVAILABLE = (429, 500, 502, 503, 504)
"""Answers of an API server that is busy, starting or restarting: the request may succeed later."""


def unavailable(error: BaseException) -> str | None:
    """In a few words, why the API server could not be asked now (down, restarting, overloaded); None for anything else.

    Either client's failure counts: aiohttp's and this module's, and the official client's (urllib3).
    The loops that retry on their own log these as a warning, not as an error with a traceback.
    """
    status = getattr(error, "status", None)
    if isinstance(error, ApiError | kubernetes.client.ApiException) and status in UNAVAILABLE:
        return f"the API server answered {status}"
    if isinstance(error, aiohttp.ClientConnectionError | TimeoutError | ConnectionError | urllib3.exceptions.HTTPError):
        return f"the API server is unreachable ({type(error).__name__})"
    return None


def log_retried(logger: logging.Logger, error: BaseException, what: str, *args: object) -> None:
    """Log the failure of a look its loop retries: a warning when the API server is unavailable (no
    traceback, it says nothing), else an error with the traceback. ``what`` is a %-format with ``args``."""
    why = unavailable(error)
    if why is None:
        logger.error(what, *args, exc_info=error)
    else:
        logger.warning(what + " (%s)", *args, why)


def _message(text: str, status: int) -> str:
    try:
        return str(json.loads(text)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{status} {text[:200]}"

"""The storm bench's alerts and webhook receiver (bench/storm.py): what it posts, and what it hears back.

Kept apart from the bench's orchestration so each file reads in one sitting: the Alertmanager
payloads (cluster_scale's, with this bench's alert name and mixed severities), the open-loop
poster that retries after a 5xx as Alertmanager does, the namespace handbook whose level 2 is due
after a delay of its own, and the receiver noting when each (Incident, kind, level) first arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp
import cluster_scale as cs
from aiohttp import web

from oncall_operator.domain import alerts as am

ALERT = "StormAlert"
SEVERITIES = ("critical", "warning", "info", "critical", "warning")  # info notifies only: no level 2


class Pages:
    """A webhook receiver on a thread of its own: when each (namespace, name, kind, level) first arrived."""

    def __init__(self, on_first_page: Any = None) -> None:
        self._at: dict[tuple[str, str, str, int], float] = {}
        self._lock = threading.Lock()  # the receiver's thread adds while the bench's reads
        self.on_first_page = on_first_page
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self.runner = web.AppRunner(app, access_log=None)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.runner.setup(), self.loop).result(10)
        self.port = cs.floorlib_free_port()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        asyncio.run_coroutine_threadsafe(site.start(), self.loop).result(10)

    async def hook(self, request: web.Request) -> web.Response:
        now = time.time()
        body = await request.json()
        inc = body.get("incident") or {}
        key = (str(inc.get("namespace")), str(inc.get("name")), str(body.get("kind")), int(body.get("level") or 0))
        with self._lock:
            first = key not in self._at
            if first:
                self._at[key] = now
        if first and key[2] == "page" and key[3] == 1 and self.on_first_page is not None:
            self.on_first_page(key[0], key[1])
        return web.Response(status=200)

    @property
    def at(self) -> dict[tuple[str, str, str, int], float]:
        """A copy of when each (namespace, name, kind, level) first arrived."""
        with self._lock:
            return dict(self._at)

    def level2(self, namespaces: set[str] | None = None) -> dict[tuple[str, str], float]:
        return {
            (k[0], k[1]): t
            for k, t in self.at.items()
            if k[2] == "page" and k[3] == 2 and (namespaces is None or k[0] in namespaces)
        }

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def handbook(hook_url: str, after: int) -> list[dict[str, Any]]:
    """cluster_scale's webhook Secret, EscalationPolicy and Runbook, with a level 2 ``after`` seconds in."""
    secret, policy, runbook, _oom = cs.handbook("", hook_url)
    policy["metadata"]["name"] = runbook["metadata"]["name"] = runbook["spec"]["escalationPolicyRef"]["name"] = "storm"
    level2 = {**policy["spec"]["levels"][0], "name": "l2", "after": f"{after}s", "targets": [{"user": "Grace"}]}
    policy["spec"]["levels"].append(level2)
    policy["spec"]["severities"] = [
        {"severity": s, "response": "Notify" if s == "info" else "Page", "channels": ["hook"]}
        for s in ("critical", "warning", "info")
    ]
    runbook["spec"]["trigger"] = {"alertName": ALERT}
    return [secret, policy, runbook]


def payload(namespace: str, run: str, seq: int) -> dict[str, Any]:
    """cluster_scale's one-alert group, with this bench's alert name and a severity by ``seq``."""
    body = cs.alert_payload(namespace, run, seq)
    labels = {**body["commonLabels"], "alertname": ALERT, "severity": SEVERITIES[seq % len(SEVERITIES)]}
    body["groupKey"] = body["groupKey"].replace(cs.ALERT_NAME, ALERT)
    body["groupLabels"]["alertname"] = ALERT
    body["commonLabels"] = body["alerts"][0]["labels"] = labels
    body["alerts"][0]["fingerprint"] = am.fingerprint(labels)
    return body


async def post(url: str, bodies: list[dict[str, Any]], rate: float, retries: int = 5) -> dict[str, Any]:
    """Post each body on its own schedule at ``rate``/s (open loop), and again after a 5xx or no answer as
    Alertmanager does (1 s, 2 s, ...); the last answers' codes, the retries, and the Incidents opened (200)."""
    codes: dict[str, int] = {}
    opened: set[tuple[str, str]] = set()
    retried = [0]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:

        async def one(body: dict[str, Any], at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            for attempt in range(retries + 1):
                try:
                    async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=60)) as reply:
                        await reply.read()
                        code = str(reply.status)
                except (aiohttp.ClientError, TimeoutError):
                    code = "0"
                if code == "0" or code.startswith("5"):
                    retried[0] += 1 if attempt < retries else 0
                    await asyncio.sleep(2**attempt)
                    continue
                break
            codes[code] = codes.get(code, 0) + 1
            if code == "200":
                opened.add((body["commonLabels"]["namespace"], am.incident_name(am.parse(body))))

        start = time.monotonic() + 0.2
        await asyncio.gather(*(one(b, start + i / rate) for i, b in enumerate(bodies)))
        seconds = time.monotonic() - start
    return {
        "codes": codes,
        "retries": retried[0],
        "opened": opened,
        "seconds": round(seconds, 1),
        "achieved_rate": round(len(bodies) / seconds, 1),
    }

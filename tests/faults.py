"""The fault campaign against a real operator and a real control plane: kills, outages, a black hole.

Used by ``tests/e2e/test_delivery_faults.py`` at small counts and by ``hack/fault_campaign.py``
at full size. The receivers are webhooks on loopback that count every completed delivery and
deduplicate by the webhook's ``id``, as a real receiver (or PagerDuty, by ``dedup_key``) does:

- ``/slow/<n>`` holds each request ``hold`` seconds before it counts it, so an operator killed
  while sending leaves nothing counted (its page would be lost without a re-send);
- ``/flaky/<n>`` answers 500 for ``fail_for`` seconds from its first request, then accepts;
- ``/stall/<n>`` never answers the first request (nor counts it), and accepts the others at once;
- ``/ok/<n>`` accepts at once; :class:`BlackHole` accepts TCP connections and never answers.

:func:`apiserver_restart` restarts the API server in the middle of many escalations.
"""

import asyncio
import contextlib
import dataclasses
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
from aiohttp import web

from tests.conftest import eventually

GROUP, VERSION = "oncall.dev", "v1alpha1"


@dataclasses.dataclass(frozen=True)
class Hit:
    path: str
    id: str
    incident: str
    level: int
    kind: str
    at: float


class Receiver:
    """Webhook receivers on their own event loop in a thread; ``hits`` are the completed deliveries."""

    def __init__(self, hold: float = 2.0, fail_for: float = 25.0) -> None:
        self.hold, self.fail_for = hold, fail_for
        self.hits: list[Hit] = []
        self.first: dict[str, float] = {}
        self.refused = 0
        self.stalled: set[str] = set()
        self.closing = asyncio.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        body = await request.json()
        if mode == "slow":
            await asyncio.sleep(self.hold)  # cancelled when the sender dies: then nothing is counted
        if mode == "stall" and request.path not in self.stalled:
            self.stalled.add(request.path)
            await self.closing.wait()  # the first request is never answered, hence never counted
            return web.Response(status=503)
        if mode == "flaky":
            first = self.first.setdefault(request.path, time.monotonic())
            if time.monotonic() - first < self.fail_for:
                self.refused += 1
                return web.Response(status=500, text="down for maintenance")
        inc = body.get("incident", {})
        self.hits.append(
            Hit(request.path, body["id"], inc.get("name", ""), body.get("level", 0), body["kind"], time.time())
        )
        return web.Response(status=204)

    def url(self, mode: str, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/{name}"

    def __enter__(self) -> "Receiver":
        self.thread.start()
        app = web.Application()
        app.router.add_post("/{mode}/{name}", self._handle)
        self.runner = web.AppRunner(app)

        async def start() -> int:
            assert self.runner is not None
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.closing.set)
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def pages(self, incident: str) -> list[Hit]:
        return [h for h in list(self.hits) if h.incident == incident and h.kind == "page"]


class BlackHole:
    """A TCP server on loopback that accepts every connection and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.done.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = self.sock.accept()
                self.held.append(conn)

    def __enter__(self) -> "BlackHole":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def policy(name: str, channels: dict[str, str], levels: list[tuple[str, str]], ack: str = "1h") -> list[dict[str, Any]]:
    """A Secret per webhook channel (its URL) and a policy paging ``levels`` [(after, channel)]."""
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-{ch}", "labels": {"oncall.dev/notifier": "true"}},  # opted in
            "stringData": {"url": url},
        }
        for ch, url in channels.items()
    ]
    objects.append(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EscalationPolicy",
            "metadata": {"name": name},
            "spec": {
                "ackTimeout": ack,
                "levels": [
                    {"name": f"l{i}", "after": after, "targets": [{"user": f"person-{i}"}], "channels": [ch]}
                    for i, (after, ch) in enumerate(levels, start=1)
                ],
                "channels": [
                    {"name": ch, "type": "Webhook", "secretRef": {"name": f"{name}-{ch}", "key": "url"}}
                    for ch in channels
                ],
                "severities": [{"severity": "critical", "response": "Page", "responseTime": "2m", "channels": ["a"]}],
            },
        }
    )
    return objects


def incident(name: str, policy_name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"title": f"{name} is down", "severity": "critical", "escalationPolicyRef": {"name": policy_name}},
    }


def notifications(custom: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    try:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", name, _request_timeout=10)
    except kubernetes.client.ApiException:
        return []
    return list(((obj.get("status") or {}).get("escalation") or {}).get("notifications") or [])


@dataclasses.dataclass
class KillRound:
    incident: str
    killed_after: float
    claimed: int = 0
    raw: int = 0
    distinct: int = 0
    pending_at_kill: int = 0


@dataclasses.dataclass
class Operator:
    """What the campaign needs of an operator process: start it, and SIGKILL it."""

    start: Callable[[], object]
    kill: Callable[[], None]


def kill_rounds(
    custom: Any,
    apply: Callable[[str, dict[str, Any]], None],
    namespace: str,
    receiver: Receiver,
    op: Operator,
    rounds: int,
    rng: random.Random,
    deadline: float = 180.0,
    lost_ok: bool = False,
) -> list[KillRound]:
    """Each round: open an Incident, SIGKILL the operator at a random point after its first claim
    shows Pending (a third of the rounds at once), start it again, wait until every claimed step is
    settled; then count what the receiver saw. ``lost_ok`` (for a baseline of an older operator)
    counts a round that never settles instead of failing it."""
    for obj in policy(
        "kp", {"a": receiver.url("slow", "a"), "b": receiver.url("slow", "b")}, [("0", "a"), ("3s", "b")]
    ):
        apply(namespace, obj)
    out: list[KillRound] = []
    for i in range(rounds):
        name = f"kill-{i}"
        delay = 0.0 if i % 3 == 0 else rng.uniform(0, 6)
        apply(namespace, incident(name, "kp"))
        eventually(
            lambda name=name: any(n["result"] == "Pending" for n in notifications(custom, namespace, name)),  # type: ignore[misc]
            60,
            interval=0.02,
            what=f"{name}: a claim",
        )
        time.sleep(delay)
        pending = sum(n["result"] == "Pending" for n in notifications(custom, namespace, name))
        op.kill()
        op.start()

        def settled(name: str = name) -> list[dict[str, Any]] | None:
            notes = notifications(custom, namespace, name)
            keys = {n["key"].split("@")[0] for n in notes}
            done = {"page/L1/loop0", "page/L2/loop0"} <= keys and all(n["result"] != "Pending" for n in notes)
            return notes if done else None

        try:
            notes = eventually(settled, deadline, interval=0.5, what=f"{name}: every claimed step settled")
        except AssertionError:
            if not lost_ok:
                raise
            notes = notifications(custom, namespace, name)
        pages = receiver.pages(name)
        out.append(KillRound(name, delay, len(notes), len(pages), len({h.id for h in pages}), pending))
        failed = [n for n in notes if n["result"] != "Delivered"]
        assert lost_ok or not failed, f"{name}: {json.dumps(failed)}"
    return out


@dataclasses.dataclass
class Restart:
    """An API server restart in the middle of ``incidents`` escalations, and what the receiver saw of each level."""

    incidents: int
    down_seconds: float
    lost: list[str]
    """Steps (incident/level) never delivered."""
    doubled: list[str]
    """Steps delivered under more than one delivery id (a second page)."""
    resent: int
    """Deliveries repeated under the same id (dropped by a deduplicating receiver)."""
    outage_seconds: float
    """From the stop to the restarted API server's readiness (its first answers come a little earlier)."""
    level2_after_stop: list[float]
    """When each level 2 arrived, in seconds after the stop began."""


def apiserver_restart(
    custom: Any,
    apply: Callable[[str, dict[str, Any]], None],
    namespace: str,
    receiver: Receiver,
    restart: Callable[[float], object],
    incidents: int,
    down: float,
    due: int = 20,
) -> Restart:
    """Open ``incidents`` Incidents whose level 2 is due ``due`` s in; once every level 1 arrived, restart
    the API server (down for ``down`` s, over level 2's time), then wait for every level 2."""
    for obj in policy("ar", {"a": receiver.url("ok", "restart")}, [("0", "a"), (f"{due}s", "a")]):
        apply(namespace, obj)
    names = [f"restart-{i}" for i in range(incidents)]
    for name in names:
        apply(namespace, incident(name, "ar"))
    for name in names:
        eventually(lambda name=name: receiver.pages(name), 120, interval=0.2, what=f"{name}: level 1")  # type: ignore[misc]
    stopped = time.time()
    restart(down)
    back = time.time()
    after: list[float] = []
    for name in names:
        hits = eventually(
            lambda name=name: [h for h in receiver.pages(name) if h.level == 2],  # type: ignore[misc]
            180,
            interval=0.5,
            what=f"{name}: level 2 after the restart",
        )
        after.append(round(hits[0].at - stopped, 1))
    lost, doubled, resent = [], [], 0
    for name in names:
        for level in (1, 2):
            hits = [h for h in receiver.pages(name) if h.level == level]
            ids = {h.id for h in hits}
            lost += [f"{name}/L{level}"] if not ids else []
            doubled += [f"{name}/L{level}"] if len(ids) > 1 else []
            resent += len(hits) - len(ids)
    return Restart(incidents, down, lost, doubled, resent, round(back - stopped, 1), after)


@contextlib.contextmanager
def serving() -> Iterator[tuple[Receiver, BlackHole]]:
    with Receiver() as receiver, BlackHole() as hole:
        yield receiver, hole

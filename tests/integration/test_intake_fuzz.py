"""The alert intake fuzzed over a real socket: never a 5xx for bad input, never a crash, always a reason.

The real aiohttp app runs on its own event loop in a thread (hypothesis' examples are
synchronous); the Incident writer it is given records each call, so the tests can count
exactly which requests reached it, with no Kubernetes API at all. Random bytes, random JSON
and valid payloads with one field broken must each get 200 (and one write) or 400 with a
JSON reason naming the field; requests without the token and oversized ones are refused
before anything is written; a failing writer gets 503, so Alertmanager retries.
"""

import asyncio
import copy
import json
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from oncall_operator.adapters import intake
from oncall_operator.domain import alerts

pytestmark = pytest.mark.timeout(120)
TOKEN = "s3cret-t0ken"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Writer:
    """Stands in for the Kubernetes side: records the payloads, or fails as told."""

    def __init__(self) -> None:
        self.calls: list[alerts.Payload] = []
        self.fail: BaseException | None = None
        self.delay = 0.0

    async def __call__(self, payload: alerts.Payload) -> intake.Accepted:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.calls.append(payload)
        return intake.Accepted(f"oncall-system/{alerts.incident_name(payload)}", created=len(self.calls) == 1)


class Served:
    """The intake app on 127.0.0.1 in a background loop, and a client for synchronous tests."""

    def __init__(
        self,
        token: str | None,
        max_bytes: int = intake.MAX_BYTES,
        write: intake.Writer | None = None,
        write_timeout: float = 0.5,
    ) -> None:
        self.writer, self.ready_reason, self.token_down = Writer(), "", False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def read_token() -> str:
            if self.token_down:
                raise intake.Unavailable("Secret oncall-system/intake not readable: connection refused")
            return token or ""

        async def ready() -> str | None:
            return self.ready_reason or None

        app = intake.build_app(
            intake.Intake(
                write=write or self.writer,
                ready=ready,
                token=intake.Token(read_token, refresh_after=0) if token else None,
                max_bytes=max_bytes,
                write_timeout=write_timeout,
            )
        )
        self.server = test_utils.TestServer(app, host="127.0.0.1")
        self.session: aiohttp.ClientSession = self._run(self._start())

    async def _start(self) -> aiohttp.ClientSession:
        await self.server.start_server()
        return aiohttp.ClientSession()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def request(
        self, method: str, path: str, body: Any = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            url = self.server.make_url(path)
            async with self.session.request(method, url, data=body, headers=headers or {}) as response:
                text = await response.text()
                is_json = response.content_type == "application/json"
                return response.status, json.loads(text) if is_json else text

        result: tuple[int, Any] = self._run(go())
        return result

    def post(self, body: bytes, token: str | None = TOKEN, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.request("POST", "/api/v1/alerts", body, {**auth, **(headers or {})})

    def close(self) -> None:
        self._run(self.session.close())
        self._run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = Served(TOKEN)
    yield s
    s.close()


@pytest.fixture
def fresh(served: Served) -> Served:
    served.writer.calls.clear()
    served.writer.fail, served.writer.delay, served.ready_reason, served.token_down = None, 0.0, "", False
    return served


def valid(n: int = 1, status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "oncall",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "severity": "warning"},
        "commonAnnotations": {"summary": "p99 above 1s"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "HighLatency", "severity": "warning", "pod": f"api-{i}"},
                "annotations": {"summary": "p99 above 1s"},
                "startsAt": "2026-03-10T08:59:00.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": f"{i:016x}",
            }
            for i in range(n)
        ],
    }


def check_answer(served: Served, status: int, body: Any, calls_before: int) -> None:
    """Either accepted and written exactly once, or refused with a reason and not written."""
    assert status in (200, 400), (status, body)
    assert isinstance(body, dict)
    if status == 200:
        assert body["status"] == "accepted" and len(served.writer.calls) == calls_before + 1
    else:
        assert isinstance(body.get("error"), str) and body["error"], body
        assert isinstance(body.get("field"), str) and body["field"], body
        assert body["error"].startswith(f"{body['field']}: "), body
        assert len(served.writer.calls) == calls_before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(body=st.binary(max_size=2048))
def test_random_bytes_are_refused_with_a_reason(fresh: Served, body: bytes) -> None:
    before = len(fresh.writer.calls)
    status, answer = fresh.post(body)
    check_answer(fresh, status, answer, before)


@FUZZ
@given(value=json_values)
def test_random_json_is_refused_with_a_reason(fresh: Served, value: Any) -> None:
    before = len(fresh.writer.calls)
    status, answer = fresh.post(json.dumps(value).encode())
    check_answer(fresh, status, answer, before)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def break_one(body: dict[str, Any], data: st.DataObject) -> None:
    """Delete one field of ``body`` or give it any JSON value (in place), as hypothesis draws it."""
    path = data.draw(st.sampled_from(_paths(body)), label="path")
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values, label="value")


@FUZZ
@given(data=st.data(), n=st.integers(1, 3), status=st.sampled_from(["firing", "resolved"]))
def test_a_valid_payload_with_one_field_broken(fresh: Served, data: st.DataObject, n: int, status: str) -> None:
    body = valid(n, status)
    if status == "resolved":
        for a in body["alerts"]:
            a["endsAt"] = "2026-03-10T09:30:00Z"
    break_one(body, data)
    before = len(fresh.writer.calls)
    answer = fresh.post(json.dumps(copy.deepcopy(body)).encode())
    check_answer(fresh, *answer, before)


@FUZZ
@given(
    labels=st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=30), min_size=1, max_size=6),
    status=st.sampled_from(["firing", "resolved"]),
    group_key=st.text(min_size=1, max_size=200),
)
def test_every_well_formed_payload_is_written_once(
    fresh: Served, labels: dict[str, str], status: str, group_key: str
) -> None:
    body = valid(1, status)
    body["groupKey"], body["alerts"][0]["labels"], body["commonLabels"] = group_key, labels, labels
    body["groupLabels"] = {"alertname": labels.get("alertname", "")}
    before = len(fresh.writer.calls)
    status_code, answer = fresh.post(json.dumps(body).encode())
    assert (status_code, len(fresh.writer.calls)) == (200, before + 1), answer
    name = alerts.incident_name(fresh.writer.calls[-1])
    assert answer["incident"] == f"oncall-system/{name}" and len(name) <= 63


@FUZZ
@given(header=st.one_of(st.none(), st.text(max_size=40)))
def test_without_the_token_nothing_is_written(fresh: Served, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    if header is not None and (not header.isprintable() or header != header.strip() or not header.isascii()):
        return  # not a valid HTTP header value: the client refuses to send it
    status, answer = fresh.request("POST", "/api/v1/alerts", json.dumps(valid()).encode(), headers)
    if header is not None and header.partition(" ")[0].lower() == "bearer" and header.partition(" ")[2] == TOKEN:
        assert status == 200
        return
    assert status == 401 and answer["field"] == "Authorization" and "bearer token" in answer["error"]
    assert fresh.writer.calls == []


def test_bearer_scheme_is_case_insensitive_and_the_token_is_not(fresh: Served) -> None:
    body = json.dumps(valid()).encode()
    assert fresh.post(body, headers={"Authorization": f"bearer {TOKEN}"})[0] == 200
    assert fresh.post(body, token=TOKEN.upper())[0] == 401
    assert fresh.post(body, headers={"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert len(fresh.writer.calls) == 1


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_request_is_refused_before_it_is_read(fresh: Served, chunked: bool) -> None:
    big = b'{"version": "4", "pad": "' + b"x" * (intake.MAX_BYTES + 10) + b'"}'

    async def chunks() -> Any:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    status, answer = fresh.post(chunks() if chunked else big)
    assert status == 413 and answer["field"] == "body" and str(intake.MAX_BYTES) in answer["error"]
    assert fresh.writer.calls == []
    assert fresh.post(json.dumps(valid()).encode())[0] == 200  # and the server goes on


def test_the_size_limit_is_checked_before_the_body_is_parsed(fresh: Served) -> None:
    body = json.dumps(valid(800)).encode()  # a real group of 800 alerts: well under 1 MiB
    assert len(body) < intake.MAX_BYTES and fresh.post(body)[0] == 200


def test_deep_nesting_is_a_reason_not_a_crash(fresh: Served) -> None:
    status, answer = fresh.post(b"[" * 200_000 + b"]" * 200_000)
    assert status == 400 and answer == {"error": "body: is nested too deeply", "field": "body"}


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (intake.Unavailable("Kubernetes API unreachable: connection refused"), "connection refused"),
        (RuntimeError("a bug"), "RuntimeError"),
        (None, "timed out"),
    ],
)
def test_a_failing_writer_gets_503_so_alertmanager_retries(
    fresh: Served, failure: BaseException | None, reason: str
) -> None:
    fresh.writer.fail = failure
    fresh.writer.delay = 2.0 if failure is None else 0.0
    status, answer = fresh.post(json.dumps(valid()).encode())
    assert status == 503 and reason in answer["error"]
    fresh.writer.fail, fresh.writer.delay = None, 0.0
    assert fresh.post(json.dumps(valid()).encode())[0] == 200


def test_an_unreadable_token_secret_gets_503_unless_the_token_is_known(fresh: Served) -> None:
    fresh.token_down = True
    assert fresh.post(json.dumps(valid()).encode())[0] == 200  # the token read before still opens the door
    status, answer = fresh.post(json.dumps(valid()).encode(), token="rotated?")  # a re-read is needed: it fails
    assert status == 503 and answer["field"] == "Authorization" and "not readable" in answer["error"]
    assert len(fresh.writer.calls) == 1


def test_health_readiness_and_other_methods(fresh: Served) -> None:
    assert fresh.request("GET", "/healthz")[0] == 200
    assert fresh.request("GET", "/readyz") == (200, {"status": "ready"})
    fresh.ready_reason = "Kubernetes API not reachable: timed out"
    assert fresh.request("GET", "/readyz") == (
        503,
        {"status": "not ready", "reason": "Kubernetes API not reachable: timed out"},
    )
    assert fresh.request("GET", "/api/v1/alerts")[0] == 405
    assert fresh.request("POST", "/api/v2/alerts")[0] == 404


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = served.request("GET", "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_what_was_received(fresh: Served) -> None:
    before = scrape(fresh)
    fresh.post(json.dumps(valid(3)).encode())
    fresh.post(json.dumps(valid(2, "resolved")).encode())
    fresh.post(b"{}")
    fresh.post(json.dumps(valid()).encode(), token="wrong")
    after = scrape(fresh)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("oncall_alerts_received_total", status="firing") == 3
    assert delta("oncall_alerts_received_total", status="resolved") == 2
    assert delta("oncall_intake_requests_total", code="200") == 2
    assert delta("oncall_intake_requests_total", code="400") == 1
    assert delta("oncall_intake_requests_total", code="401") == 1


def test_without_a_token_configured_anyone_may_post() -> None:
    s = Served(token=None, max_bytes=1000)
    try:
        assert s.post(json.dumps(valid()).encode(), token=None)[0] == 200
        assert s.post(json.dumps(valid(10)).encode(), token=None)[0] == 413
    finally:
        s.close()

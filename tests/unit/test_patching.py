"""The dry-run pair before a workload patch: both are sent, a refusal is explained, each leg is timed.

A fake API stands in for the server (these tests are about what ``patching.dry_runs`` concludes);
the e2e OOM and runbook-action tests send the same pair to a real API server.
"""

import asyncio
from typing import Any

import pytest

from oncall_operator.adapters import apiserver
from oncall_operator.executor import patching

OPS = [{"op": "replace", "path": "/spec/replicas", "value": 2}]
PROBE = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}, "spec": {"containers": []}}


class FakeApi:
    """Answers each call once ``together`` calls have started (a gate no sequential caller gets through);
    refuses the Pod dry-run with ``pod_refusal`` when set."""

    def __init__(self, together: int = 1, pod_refusal: apiserver.ApiError | None = None) -> None:
        self.together, self.pod_refusal = together, pod_refusal
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.gate = asyncio.Event()

    async def call(self, method: str, path: str, body: Any = None, *args: Any, **params: str) -> dict[str, Any]:
        self.calls.append((method, path, params))
        if len(self.calls) >= self.together:
            self.gate.set()
        await self.gate.wait()
        if method == "POST" and self.pod_refusal is not None:
            raise self.pod_refusal
        return {}


async def dry_runs(api: FakeApi, took: dict[str, float] | None = None) -> str | None:
    return await patching.dry_runs(api, "Deployment", "shop", "web", OPS, PROBE, False, took)  # type: ignore[arg-type]


async def test_both_dry_runs_are_sent_at_once_and_each_leg_is_timed() -> None:
    api = FakeApi(together=2)  # neither is answered before the other was sent
    took: dict[str, float] = {}
    assert await asyncio.wait_for(dry_runs(api, took), timeout=5) is None
    assert [(m, p.rsplit("/", 1)[-1]) for m, p, _ in api.calls] == [("PATCH", "web"), ("POST", "pods")]
    assert all(params.get("dryRun") == "All" for _, _, params in api.calls)
    assert took.keys() == {"patch", "pod"} and all(ms >= 0 for ms in took.values()), took


async def test_a_refused_pod_is_explained_and_still_timed() -> None:
    api = FakeApi(pod_refusal=apiserver.ApiError(403, 'pods "web-x" is forbidden: violates PodSecurity'))
    took: dict[str, float] = {}
    assert await dry_runs(api, took) == 'a pod of the new template: pods "web-x" is forbidden: violates PodSecurity'
    assert took.keys() == {"patch", "pod"}


async def test_a_transient_answer_is_raised_for_the_retry_policy() -> None:
    with pytest.raises(apiserver.ApiError):
        await dry_runs(FakeApi(pod_refusal=apiserver.ApiError(503, "unavailable")))

"""Pods: watch for OOM kills, and only watch (never a write, annotation, label or finalizer on a Pod).

The watch is the operator's own (:mod:`oncall_operator.adapters.podwatch`), not a Kopf handler:
Kopf lists all pods unpaginated and keeps memory and a worker per pod before any filter runs
(349 MiB at 10,000 pods, for a target of 150). A startup handler starts it once the OOM state and
Kopf's indices are in ``memo`` (startup handlers run in registration order: ``settings``,
``objects`` and ``oom_state`` come first); a cleanup handler stops it, its remediations and its
session before ``oom_close``. Each OOM-killed pod goes to :func:`oncall_operator.executor.remediate`
with the Runbooks of Kopf's index or, until Kopf has filled it just after a start, of the API (the
two namespaces a runbook is chosen from: the pod's and the operator's). The executor's Events go
through :class:`oncall_operator.adapters.events.Poster`: Kopf's poster serves only Kopf's tasks.
"""

import asyncio
import contextlib
from typing import Any

import kopf

from oncall_operator import executor
from oncall_operator.adapters import alert_incidents, events, podwatch, workloads
from oncall_operator.api import runbook
from oncall_operator.handlers import objects
from oncall_operator.handlers import settings as config

assert objects  # imported first: its startup handler puts the indices in memo before ours runs


@kopf.on.startup()
def oom_state(memo: Any, **_: Any) -> None:
    memo.oom = executor.OomState()
    memo.oom_options = executor.Options(
        operator_namespace=config.CONFIG.namespace,
        watch_namespaces=config.CONFIG.watch_namespaces,
        dry_run=config.CONFIG.dry_run,
        ready=objects.ready_when_filled(memo.indices),
    )


@kopf.on.startup()
async def pod_watch_start(memo: Any, settings: kopf.OperatorSettings, **_: Any) -> None:
    async def handle(pod: dict[str, Any]) -> None:
        candidates = await runbook_candidates(memo, pod["metadata"].get("namespace", ""))
        await executor.remediate(memo.kube, memo.oom, pod, candidates, memo.oom_options)

    memo.pod_watch_api = workloads.Api(memo.kube)
    memo.pod_watch = podwatch.PodWatch(memo.pod_watch_api, config.CONFIG.watch_namespaces, handle)
    memo.pod_watch_events = events.Poster(memo.pod_watch_api, settings)
    # the executor's kopf.event calls need a poster: Kopf's serves only Kopf's own tasks
    memo.pod_watch_task = memo.pod_watch_events.spawn(memo.pod_watch.run(), "pod watch")


@kopf.on.cleanup()
async def pod_watch_stop(memo: Any, **_: Any) -> None:
    """Before ``oom_close``: the remediations are cancelled before their session closes."""
    task = getattr(memo, "pod_watch_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await memo.pod_watch.close()
        await memo.pod_watch_events.close()
        await memo.pod_watch_api.close()


@kopf.on.cleanup()
async def oom_close(memo: Any, **_: Any) -> None:
    if "oom" in memo:
        await memo.oom.close()


async def runbook_candidates(memo: Any, namespace: str) -> list[tuple[str, str, runbook.RunbookSpec | None]]:
    """Kopf's index of Runbooks; until it is filled, the Runbooks of the namespaces one is chosen from."""
    indexed = memo.indices.runbook_candidates()
    if indexed is not None:
        return list(indexed)
    found: list[tuple[str, str, runbook.RunbookSpec | None]] = []
    for ns in dict.fromkeys([namespace, config.CONFIG.namespace]):
        found += await alert_incidents.runbooks(memo.pod_watch_api, ns)
    return found

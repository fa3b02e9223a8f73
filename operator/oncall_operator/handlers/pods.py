"""Pods: watch for OOM kills, and only watch.

``@kopf.on.event`` is the one Kopf handler that stores nothing on the object it handles (no
annotation, label, finalizer or status: Kopf's state-keeping handlers on Pods caused endless
patching and stuck Terminating pods elsewhere, kopf #686 and #1104). The ``when`` filter reads
the container statuses in memory, so the many pod events without an OOM kill cost no API call.
The module logger is used instead of Kopf's per-object ``logger``, which would post every
message as an Event about the Pod. Everything else is in :mod:`oncall_operator.executor`.
"""

import logging
from typing import Any

import kopf

from oncall_operator import executor
from oncall_operator.domain import oom
from oncall_operator.handlers import objects, settings

log = logging.getLogger(__name__)


@kopf.on.startup()
def oom_state(memo: Any, **_: Any) -> None:
    memo.oom = executor.OomState()
    memo.oom_options = executor.Options(
        operator_namespace=settings.CONFIG.namespace,
        watch_namespaces=settings.CONFIG.watch_namespaces,
        dry_run=settings.CONFIG.dry_run,
    )


@kopf.on.cleanup()
async def oom_close(memo: Any, **_: Any) -> None:
    if "oom" in memo:
        await memo.oom.close()


def _oom_in_status(status: kopf.Status, **_: Any) -> bool:
    return oom.has_oom(status)


def runbook_candidates(index: objects.SpecIndex) -> list[tuple[str, str, Any]]:
    return [(ns or "", name, next(iter(store), None)) for (ns, name), store in index.items()]


@kopf.on.event("", "v1", "pods", when=_oom_in_status)
async def pod_oom_killed(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    candidates = runbook_candidates(kwargs["runbook_specs"])
    await executor.remediate(memo.kube, memo.oom, body, candidates, memo.oom_options)

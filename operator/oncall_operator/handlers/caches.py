"""Start the watches that feed the OOM remediation's caches, once the OOM state exists.

The caches (:mod:`oncall_operator.adapters.caches`) let a kill be answered without reading the
workload, its namespace and its Incident first. They live in ``memo.oom`` (the
:class:`executor.OomState` the pod handlers set up at start-up) and stop with it
(``OomState.close`` at clean-up). Start-up handlers run one after the other in the order they
were registered, and this module is registered after ``pods`` (``handlers/__init__.py``); should
the OOM state not be there anyway, this handler asks Kopf to come back a moment later.
"""

from typing import Any

import kopf


@kopf.on.startup()
async def oom_caches(memo: Any, **_: Any) -> None:
    if "oom" not in memo or "oom_options" not in memo or "kube" not in memo:
        raise kopf.TemporaryError("the OOM state is not set up yet", delay=0.1)
    memo.oom.start_caches(memo.kube, memo.oom_options.watch_namespaces)

"""Whether an Incident's pages are muted now, the target workload's labels included when a window selects by them.

A MaintenanceWindow scoped by ``workloadSelector`` (``app: postgres``) must hold the pages of an
Incident about that workload, not only pause the actions on it. The escalation knows the
Incident, not the workload's labels: only while such a window is active in the Incident's
namespace are they read, from the OOM remediation's watch-fed cache when it knows the
workload, else with one GET. A workload that cannot be read mutes nothing by its labels (a page
is never held on a guess); the other windows still apply.
"""

import datetime as dt
import logging

from oncall_operator.adapters import apiserver, workloads
from oncall_operator.api import incident
from oncall_operator.api.maintenance import Mutes
from oncall_operator.domain import maintenance
from oncall_operator.executor import context

log = logging.getLogger(__name__)


async def pages_muted(ctx: context.Context, inc: incident.Incident, now: dt.datetime) -> maintenance.Mute | None:
    """The window muting the Incident's pages now (the one that ends last), or None."""
    ns, labels, home = inc.metadata.namespace, inc.spec.source.labels, ctx.config.namespace
    t = inc.spec.target
    selecting = maintenance.selects_workloads(ctx.indices.window_list(), Mutes.PAGES, ns, home, now)
    wanted = selecting and bool(t.kind and t.name) and (t.namespace or ns) == ns
    workload_labels = await _labels(ctx, t.kind, ns, t.name) if wanted else None
    return ctx.indices.muted(Mutes.PAGES, ns, labels, workload_labels, home, now)


async def _labels(ctx: context.Context, kind: str, namespace: str, name: str) -> dict[str, str] | None:
    cache = ctx.oom.caches
    known, obj = cache.workload(kind, namespace, name) if cache is not None else (False, None)
    if not known:
        try:
            obj = await workloads.read(ctx.api, kind, namespace, name)
        except apiserver.ApiError as error:
            log.warning("labels of %s %s/%s unread (%s): no window selects it by them", kind, namespace, name, error)
            return None
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {}) if obj is not None else None

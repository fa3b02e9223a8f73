"""Watch-fed caches of what an OOM remediation reads: workloads, namespaces' annotations, OOM Incidents, VPAs.

Reading the workload, its namespace and its Incident with GETs costs a round trip between the
kill and the patch. Here each is kept from a list + watch (aiohttp, on the session of
:class:`apiserver.Api`): pages of 500 on the list, bookmarks on the watch, a relist on 410
Gone and after any broken stream, a re-watch from the last resourceVersion when the server
ends a stream normally (lines split and decoded by :mod:`.watchevents`). A store answers
only once its list is in (``synced``); until then, and after an error until the relist is
done, it answers "don't know" and the caller GETs.

What is kept is trimmed, and kept as compact JSON text rather than parsed dicts (a parsed
Deployment takes several times its JSON size in Python objects): workloads keep metadata
without managedFields, the spec, and the few status fields :func:`workload.rollout_complete`
reads; namespaces keep only their annotations; Incidents drop managedFields; VerticalPodAutoscalers
keep their target and update mode. A cluster that does not serve VPAs answers 404: that store
never syncs (it retries quietly), and the caller lists them itself, as it would without caches.

Staleness is the caller's to make safe (see :mod:`oncall_operator.executor`): a cached
workload is only ever patched with :func:`preconditions` in front of the plan's operations,
so the API server refuses the patch (422) if the object changed in any way the plan read.

Write-through: the executor puts what its own writes returned (the patched workload, the
written Incident), so the next kill of the same workload plans on it without waiting for the
watch. The watch may then deliver events older than that copy; they are dropped by comparing
resourceVersions as integers, as client-go's ``NewIntegerResourceVersionMutationCache`` does
for the same purpose. Where a resourceVersion is not an integer, write-through is skipped and
the watch alone feeds the store.
"""

import asyncio
import collections.abc as cabc
import json
import logging
from typing import Any

import aiohttp

from oncall_operator.adapters import apiserver, kept, watchevents
from oncall_operator.api import GROUP, VERSION, runbook
from oncall_operator.domain import oom_incident, workload

log = logging.getLogger(__name__)
Trim = cabc.Callable[[dict[str, Any]], dict[str, Any]]
MAX_NAMESPACES = 10
WATCH_SECONDS = 290
_ROLLOUT_STATUS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "currentRevision",
    "updateRevision",
    "desiredNumberScheduled",
    "currentNumberScheduled",
    "updatedNumberScheduled",
    "numberAvailable",
)
KINDS = (
    ("Deployment", "apps/v1", "deployments"),
    ("StatefulSet", "apps/v1", "statefulsets"),
    ("DaemonSet", "apps/v1", "daemonsets"),
    ("CronJob", "batch/v1", "cronjobs"),
)
"""Every owner kind the remediation patches (:data:`workload.SUPPORTED`): one watch each per scope."""
_COMPACT = (",", ":")


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def trim_workload(obj: dict[str, Any]) -> dict[str, Any]:
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    status = obj.get("status") or {}
    return {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "metadata": meta,
        "spec": obj.get("spec") or {},
        "status": {k: status[k] for k in _ROLLOUT_STATUS if k in status},
    }


def trim_namespace(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "resourceVersion", "annotations") if k in meta}
    return {"metadata": keep}


def trim_incident(obj: dict[str, Any]) -> dict[str, Any]:
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return {**obj, "metadata": meta}


def trim_vpa(obj: dict[str, Any]) -> dict[str, Any]:
    """What :func:`workload.vpa_manager` reads of a VerticalPodAutoscaler: its name, target and update mode."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    keep = {k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta}
    return {"metadata": keep, "spec": {k: spec[k] for k in ("targetRef", "updatePolicy") if k in spec}}


WATCHED_ANNOTATIONS = (workload.OPT_OUT, workload.MARKER, *workload.GITOPS_ANNOTATIONS)
"""The workload annotations a plan reads (opt-out, the last kill answered, GitOps tracking)."""


def preconditions(obj: cabc.Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON-patch ``test`` operations that hold only on the object as the plan read it.

    The uid (not a re-created namesake), the generation (any spec change: template, paused,
    replicas), the whole labels map (runbook matching, GitOps) and each annotation the plan
    reads, with its value or ``null`` for "absent" (the API server's JSON patch passes a
    ``test`` of ``null`` on a missing member and fails it on a present one). Not the whole
    annotations map: the Deployment controller rewrites ``deployment.kubernetes.io/revision``
    right after every template change, which is when OOM kills come. Status is left out too:
    controllers change it all the time and the plan never reads it.
    """
    meta = obj.get("metadata") or {}
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/uid", "value": meta.get("uid", "")},
        {"op": "test", "path": "/metadata/generation", "value": meta.get("generation", 0)},
        {"op": "test", "path": "/metadata/labels", "value": meta.get("labels")},
    ]
    annotations = meta.get("annotations")
    if annotations is None:
        return [*ops, {"op": "test", "path": "/metadata/annotations", "value": None}]
    for key in WATCHED_ANNOTATIONS:
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        ops.append({"op": "test", "path": path, "value": annotations.get(key)})
    return ops


def _rv(obj: cabc.Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _older(rv: str, than: str) -> bool:
    return rv.isdigit() and than.isdigit() and int(rv) < int(than)


class Store:
    """One kind in one scope (a namespace, or the cluster), as its watch last told it."""

    def __init__(self, what: str, path: str, kind: str, api_version: str, trim: Trim, selector: str = "") -> None:
        self.what, self.path, self.kind, self.api_version = what, path, kind, api_version
        self.trim, self.selector = trim, selector
        self.items: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, name) -> (resourceVersion, JSON)
        self.synced = False

    def get(self, namespace: str, name: str) -> tuple[bool, dict[str, Any] | None]:
        """(known, object): known is False while the store cannot vouch for its content."""
        if not self.synced:
            return False, None
        found = self.items.get((namespace, name))
        return True, (json.loads(found[1]) if found else None)

    def put(self, obj: dict[str, Any]) -> None:
        """Write-through of an object our own write returned; ignored unless it is newer."""
        rv, key = _rv(obj), kept.key_of(obj)
        have = self.items.get(key)
        if not rv.isdigit() or (have is not None and not _older(have[0], rv)):
            return
        self._store(key, rv, obj)

    def _store(self, key: tuple[str, str], rv: str, obj: dict[str, Any]) -> None:
        full = {"apiVersion": self.api_version, "kind": self.kind, **obj}
        self.items[key] = (rv, json.dumps(self.trim(full), separators=_COMPACT))

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) applied, unless older than what is kept."""
        rv, key = _rv(obj), kept.key_of(obj)
        have = self.items.get(key)
        if have is not None and _older(rv, have[0]):
            return  # older than a write-through copy
        if kind == "DELETED":
            self.items.pop(key, None)
        else:
            self._store(key, rv, obj)

    async def run(self, api: apiserver.Api) -> None:
        """List, then watch, forever; back off and relist after an error."""
        delay = 0.5
        while True:
            try:
                rv = await self._list(api)
                delay = 0.5
                while True:
                    rv = await self._watch(api, rv)
            except asyncio.CancelledError:
                self.synced = False
                raise
            except Gone:
                self.synced = False
                continue
            except (apiserver.ApiError, aiohttp.ClientError, TimeoutError, ValueError) as error:
                self.synced = False
                if isinstance(error, apiserver.ApiError) and error.status == 410:
                    continue  # a list's continue token or a watch's resourceVersion expired
                status = error.status if isinstance(error, apiserver.ApiError) else 0
                level = {403: logging.ERROR, 404: logging.DEBUG}.get(status, logging.INFO)  # 404: an API not served
                text = "cache of %s: %s; relisting in %.1fs (reads go to the API meanwhile)"
                log.log(level, text, self.what, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _list(self, api: apiserver.Api) -> str:
        items: dict[tuple[str, str], tuple[str, str]] = {}
        rv = ""
        async for page in api.pages(self.path, selector=self.selector):
            for obj in page.get("items") or ():
                full = {"apiVersion": self.api_version, "kind": self.kind, **obj}
                items[kept.key_of(obj)] = (_rv(obj), json.dumps(self.trim(full), separators=_COMPACT))
            rv = (page.get("metadata") or {}).get("resourceVersion") or rv
        self.items, self.synced = items, True
        size = sum(len(v[1]) for v in items.values())
        log.info("cache of %s: %d listed (%d KiB of JSON kept)", self.what, len(items), size // 1024)
        return rv

    async def _watch(self, api: apiserver.Api, rv: str) -> str:
        """One watch stream from ``rv``; returns the last resourceVersion seen when the server ends it."""
        params = {
            "watch": "1",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        if self.selector:
            params["labelSelector"] = self.selector
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=WATCH_SECONDS + 30)
        async with api.stream(self.path, timeout, **params) as reply:
            lines = watchevents.Lines()
            async for chunk in reply.content.iter_any():
                for line in lines.feed(chunk):
                    event = watchevents.decode(line)
                    if event.type == "ERROR":
                        if event.obj.get("code") == 410:
                            raise Gone()
                        raise apiserver.ApiError(int(event.obj.get("code") or 500), str(event.obj.get("message")))
                    rv = event.resource_version or rv
                    if event.type in ("ADDED", "MODIFIED", "DELETED"):
                        self.event(event.type, event.obj)
        return rv


class Caches:
    """The stores an OOM remediation reads, for the scopes the operator watches.

    ``scopes`` empty means cluster-wide; otherwise one store per kind per exact namespace name
    (a glob pattern gets no store: its reads go to the API). Namespaces are always watched
    cluster-wide (annotations only; the chart grants list/watch on namespaces in both modes).
    Each watch holds one connection of the session's pool (aiohttp: 100), which the hot path
    shares, so at most :data:`MAX_NAMESPACES` watched namespaces get stores; the rest GET.
    """

    def __init__(self, scopes: cabc.Sequence[str] = ()) -> None:
        exact = [s for s in scopes if not any(c in s for c in "*?[]!")][:MAX_NAMESPACES]
        self.cluster = not scopes
        self.workloads: dict[tuple[str, str], Store] = {}  # (kind, namespace or "") -> store
        self.incidents: dict[str, Store] = {}
        self.vpas: dict[str, Store] = {}
        """VerticalPodAutoscalers, where the cluster serves them (else never synced: the caller lists)."""
        selector = f"{oom_incident.TRIGGER_LABEL}={runbook.TriggerEvent.OOM_KILLED.value}"
        for ns in [""] if self.cluster else exact:
            where = f"/namespaces/{ns}" if ns else ""
            for kind, api_version, plural in KINDS:
                path = f"/apis/{api_version}{where}/{plural}"
                self.workloads[kind, ns] = Store(f"{plural} {ns or '(all)'}", path, kind, api_version, trim_workload)
            path = f"/apis/autoscaling.k8s.io/v1{where}/verticalpodautoscalers"
            self.vpas[ns] = Store(
                f"verticalpodautoscalers {ns or '(all)'}", path, "VerticalPodAutoscaler", "", trim_vpa
            )
            path = f"/apis/{GROUP}/{VERSION}{where}/incidents"
            self.incidents[ns] = Store(
                f"incidents {ns or '(all)'}", path, "Incident", f"{GROUP}/{VERSION}", trim_incident, selector
            )
        self.namespaces = Store("namespaces", "/api/v1/namespaces", "Namespace", "v1", trim_namespace)
        self.tasks: list[asyncio.Task[None]] = []

    def stores(self) -> list[Store]:
        return [*self.workloads.values(), *self.incidents.values(), *self.vpas.values(), self.namespaces]

    def start(self, api: apiserver.Api) -> None:
        if not self.tasks:
            self.tasks = [asyncio.create_task(s.run(api), name=f"cache {s.what}") for s in self.stores()]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    def workload(self, kind: str, namespace: str, name: str) -> tuple[bool, dict[str, Any] | None]:
        store = self.workloads.get((kind, "" if self.cluster else namespace))
        return store.get(namespace, name) if store else (False, None)

    def incident(self, namespace: str, name: str) -> tuple[bool, dict[str, Any] | None]:
        store = self.incidents.get("" if self.cluster else namespace)
        return store.get(namespace, name) if store else (False, None)

    def vpas_in(self, namespace: str) -> list[dict[str, Any]] | None:
        """The namespace's VerticalPodAutoscalers; None when the cache cannot vouch (not served, not listed)."""
        store = self.vpas.get("" if self.cluster else namespace)
        if store is None or not store.synced:
            return None
        return [json.loads(text) for (ns, _), (_, text) in store.items.items() if ns == namespace]

    def namespace_annotations(self, namespace: str) -> dict[str, str] | None:
        known, obj = self.namespaces.get("", namespace)
        if not known:
            return None
        return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})

    def put_workload(self, obj: dict[str, Any]) -> None:
        store = self.workloads.get((obj.get("kind", ""), "" if self.cluster else kept.key_of(obj)[0]))
        if store is not None:
            store.put(obj)

    def put_incident(self, obj: dict[str, Any]) -> None:
        store = self.incidents.get("" if self.cluster else kept.key_of(obj)[0])
        if store is not None:
            store.put(obj)

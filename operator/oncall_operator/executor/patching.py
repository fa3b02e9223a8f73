"""What every flow that changes a workload shares: the dry-runs, the patch, one retry policy, Events, locks.

A change is written the same way whoever planned it (an OOM raise, a rollback, a scale, a
flag): first a server-side dry-run of the exact JSON patch, and of a Pod built from the
patched template where there is one (LimitRange, ResourceQuota, webhooks and Pod Security
judge Pods, not Deployments); then the one real patch. A ``test`` operation that fails (the
object changed since it was read, or a cached copy was stale) is a 422, which raises
:class:`Retry`: the caller reads again and re-plans, at most a few times (:func:`retrying`).
Transient answers (429, 5xx, a 409, a dropped connection) are retried with backoff; any other
refusal is one clear log line, never a traceback. Changes of one workload are serialised by
:class:`Locks`, shared by the OOM and the runbook-action flows, so a raise and a rollback of
one Deployment never interleave.
"""

import asyncio
import collections.abc as cabc
import json
import logging
import time
import weakref
from typing import Any, Generic, TypeVar

import aiohttp
import kubernetes

from oncall_operator.adapters import apiserver, events, incidents, workloads
from oncall_operator.api import GROUP, VERSION, kinds

log = logging.getLogger(__name__)
TRANSIENT = (429, 500, 502, 503, 504)
ATTEMPTS = 4
T = TypeVar("T")
K = TypeVar("K", bound=cabc.Hashable)


class Retry(Exception):
    """The object changed between the read and the patch: read it again and re-plan."""


class Locks(Generic[K]):
    """One asyncio lock per key (a workload, an open Incident), kept only while somebody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[K, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: K) -> asyncio.Lock:
        found = self._locks.get(key)
        if found is None:
            found = self._locks[key] = asyncio.Lock()
        return found


async def retrying(attempt: cabc.Callable[[int], cabc.Awaitable[T]], what: str) -> T | None:
    """Run ``attempt(n)`` until it returns, retrying :class:`Retry`, conflicts and transient failures.

    The last attempt's transport error is raised; a refusal that retrying cannot fix (RBAC, a
    namespace being deleted...) is logged in one line and answered None: the next event retries.
    """
    for n in range(ATTEMPTS):
        last = n == ATTEMPTS - 1
        try:
            return await attempt(n)
        except Retry:
            log.info("%s: the object changed since it was read; reading it again", what)
            continue
        except (apiserver.ApiError, kubernetes.client.ApiException, incidents.ConflictsExhausted) as error:
            status = getattr(error, "status", 409)
            if not last and status in (*TRANSIENT, 409):
                await asyncio.sleep(0.5 * 2**n)
                continue
            text = text_of(error)
            if status == 403 and "being terminated" in text:  # NamespaceTerminating: nothing left to act for
                log.warning("%s not done: its namespace is being deleted (%s)", what, text)
            else:
                log.error("%s not done: %s", what, text)
            return None
        except (aiohttp.ClientError, TimeoutError) as error:
            if last:
                raise
            log.warning("%s: %r, retrying", what, error)
            await asyncio.sleep(0.5 * 2**n)
    return None


def text_of(error: Exception) -> str:
    """The API server's own words for a refusal, from either client."""
    if isinstance(error, apiserver.ApiError):
        return error.message
    body = getattr(error, "body", None)
    try:
        return str(json.loads(body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(error)


async def dry_runs(
    api: apiserver.Api,
    kind: str,
    namespace: str,
    name: str,
    ops: list[dict[str, Any]],
    probe: dict[str, Any] | None,
    last: bool,
    took: dict[str, float] | None = None,
) -> str | None:
    """Why the API server would refuse the patch (or a pod of the new template, ``probe``), or None.

    ``took``, when given, is filled with each dry-run's milliseconds (``patch``, ``pod``).
    """
    calls = [_timed(workloads.patch(api, kind, namespace, name, ops, True), took, "patch")]
    if probe is not None:
        calls.append(_timed(workloads.dry_run_pod(api, namespace, probe), took, "pod"))
    results = await asyncio.gather(*calls, return_exceptions=True)
    problems = []
    for what, result in zip((f"the {kind} patch", "a pod of the new template"), results, strict=False):
        if isinstance(result, apiserver.ApiError):
            if what.endswith("patch") and result.status == 422 and not last:
                raise Retry()
            if result.status in TRANSIENT:
                raise result
            problems.append(f"{what}: {result.message}")
        elif isinstance(result, BaseException):
            raise result
    return "; ".join(problems) or None


async def _timed(call: cabc.Awaitable[T], took: dict[str, float] | None, key: str) -> T:
    start = time.perf_counter()
    try:
        return await call
    finally:
        if took is not None:
            took[key] = (time.perf_counter() - start) * 1000


async def patch(
    api: apiserver.Api, kind: str, namespace: str, name: str, ops: list[dict[str, Any]], last: bool
) -> tuple[str | None, dict[str, Any] | None]:
    """The patch's failure in words (None when applied), and the patched object."""
    try:
        patched = await workloads.patch(api, kind, namespace, name, ops, False)
    except apiserver.ApiError as error:
        if error.status in (409, 422) and not last:
            raise Retry() from error
        if error.status in TRANSIENT:
            raise
        return f"the {kind} patch failed: {error.message}", None
    return None, patched


async def resize(api: apiserver.Api, namespace: str, pod: str, ops: list[dict[str, Any]]) -> str | None:
    """Resize a pod in place: a server-side dry-run, then the call; why it was refused, or None when done."""
    for dry_run in (True, False):
        try:
            await workloads.resize(api, namespace, pod, ops, dry_run)
        except apiserver.ApiError as error:
            if error.status in TRANSIENT:
                raise
            return f"the in-place resize{' (dry-run)' if dry_run else ''} was refused: {error.message}"
    return None


def incident_ref(namespace: str, name: str, uid: str | None) -> dict[str, Any]:
    """An Incident as an Event's subject."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kinds.INCIDENT.kind,
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
    }


def explain(
    poster: events.Poster, subjects: cabc.Iterable[cabc.Mapping[str, Any]], warning: bool, reason: str, text: str
) -> None:
    """The same Event on each subject (the object acted on, and the Incident)."""
    for subject in subjects:
        poster.emit(subject, warning, reason, text)

"""Reading, opening and updating Incidents without ever losing a concurrent write.

Several parts of the operator write one Incident's status (the escalation engine, the OOM
remediation, the intake, a person acknowledging with kubectl). A merge patch would let one
overwrite another's timeline entry, so every status write here is a read-modify-write with
the object's resourceVersion as a precondition, retried on a conflict: the API server, not
memory, decides the order. Creation uses deterministic names, so a duplicate delivery meets
AlreadyExists instead of opening a second Incident.
"""

import collections.abc as cabc
import dataclasses
import functools
from typing import Any

import kubernetes

from oncall_operator.adapters import apiserver, kube
from oncall_operator.api import GROUP, VERSION, base, incident, kinds
from oncall_operator.domain import bounds

PLURAL = kinds.INCIDENT.plural
Mutation = cabc.Callable[[incident.Incident], incident.IncidentStatus | None]
"""Given the current Incident, return its new status, or None to leave it as it is."""


class ConflictsExhausted(RuntimeError):
    """The Incident kept changing under us; the caller should retry later."""


@dataclasses.dataclass(frozen=True)
class Written:
    changed: bool
    raw: dict[str, Any]
    """The Incident as the API server last answered (for a later ``known=``)."""
    parsed: incident.Incident | None = dataclasses.field(default=None, repr=False, compare=False)
    sent: tuple[incident.Incident, incident.IncidentStatus | None] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    """The Incident the write started from and the status it sent: :attr:`incident` without validating ``raw``."""

    @functools.cached_property
    def incident(self) -> incident.Incident:
        """``raw`` as a model, once and only when asked (issue 18: validating every answer was 3 % of a storm's CPU)."""
        if self.parsed is not None:
            return self.parsed
        if self.sent is not None:
            return as_written(*self.sent, self.raw)
        return incident.Incident.model_validate(self.raw)


def as_written(
    sent: incident.Incident, status: incident.IncidentStatus | None, answer: cabc.Mapping[str, Any]
) -> incident.Incident:
    """The Incident the API server holds after it took ``sent`` (with ``status``): its answer, without validating it.

    A write under a resourceVersion precondition that succeeds changes nothing else: the spec is
    the one ``sent`` was read with (the status subresource ignores it; a newer one would have been a
    409), and the status is what was sent (the schema is generated from these models, so the API
    server neither prunes nor defaults anything in it). Only the metadata is the server's: the new
    resourceVersion and managedFields. Validating the whole answer again cost 3 % of an alert
    storm's CPU (issue 18); ``tests/e2e/test_status_writes.py`` checks this against the API server.
    """
    meta = base.Metadata.model_validate(answer.get("metadata") or {})
    return sent.model_copy(update={"metadata": meta, "status": status})


def get(k: kube.Kube, namespace: str, name: str) -> incident.Incident | None:
    raw = _get_raw(k, namespace, name)
    return None if raw is None else incident.Incident.model_validate(raw)


async def create_async(
    api: apiserver.Api, namespace: str, name: str, spec: incident.IncidentSpec, labels: cabc.Mapping[str, str]
) -> tuple[dict[str, Any], bool]:
    """Create the Incident, or find the one of that name; (the object as the API server answered, created)."""
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kinds.INCIDENT.kind,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec.wire(),
    }
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    for _ in range(2):  # the second time only if it was deleted between the create and the read
        try:
            created = await api.call("POST", path, body)
        except apiserver.ApiError as error:
            if error.status != 409:
                raise
        else:
            return created or {}, True
        existing = await api.call("GET", f"{path}/{name}")
        if existing is not None:
            return existing, False
    raise ConflictsExhausted(f"Incident {namespace}/{name} keeps appearing and disappearing")


Request = tuple[str, dict[str, Any] | None]
"""("GET", None) for the latest Incident, or ("PUT", object) for a status write."""
Answer = tuple[int, dict[str, Any] | None]
"""(HTTP status, object): 200 with the object, 404 or 409 without."""


def _steps(
    namespace: str,
    name: str,
    mutate: Mutation,
    attempts: int,
    known: cabc.Mapping[str, Any] | None,
    fits: bool,
    parsed: incident.Incident | None = None,
) -> cabc.Generator[Request, Answer, Written | None]:
    """The read-modify-write loop without I/O: it asks for requests, the two drivers below send them.

    ``parsed``: ``known`` validated already by the caller, used instead of validating it again
    (a mutation never changes the Incident it is given: each copies the status it edits).

    ``fits``: the operator's writes are fitted under the byte budget (:func:`bounds.fit`). A
    person's are not: fitting compacts the timeline and the operator's lists, and the admission
    policy lets a person only append (measured: ``kubectl oncall ack`` on an Incident 16 bytes
    under the budget was refused); the operator's next write fits it again.
    """
    for attempt in range(attempts):
        if attempt == 0 and known is not None:
            raw: dict[str, Any] | None = _copy(known)
        else:
            _, raw = yield ("GET", None)
        if raw is None:
            return None
        reuse = parsed is not None and attempt == 0 and known is not None
        current = parsed if reuse and parsed is not None else incident.Incident.model_validate(raw)
        status = mutate(current)
        if status is None:
            return Written(False, raw, current)
        sent, raw["status"] = bounds.fitted_wire(status) if fits else (status, status.wire())
        code, written = yield ("PUT", raw)
        if code == 404:
            return None
        if code == 409 or written is None:
            continue
        return Written(True, written, sent=(current, sent))
    raise ConflictsExhausted(f"Incident {namespace}/{name} changed {attempts} times while being updated")


def update_status(
    k: kube.Kube,
    namespace: str,
    name: str,
    mutate: Mutation,
    attempts: int = 8,
    known: cabc.Mapping[str, Any] | None = None,
) -> Written | None:
    """Apply ``mutate`` to the latest Incident and write the status back, retrying on conflicts.

    ``known`` is the Incident as the caller last saw it (a watch event, a create's answer): the
    first attempt starts from it instead of a GET, and its resourceVersion makes a stale copy a
    409, after which the Incident is read. A ``mutate`` that finds nothing to do on ``known``
    writes nothing: a newer version reaches its watcher as an event, which judges again.
    Returns None when the Incident does not exist. Blocking, for the kubectl plugin (a person's
    write: appended, never fitted); the operator uses :func:`update_status_async`.
    """
    steps = _steps(namespace, name, mutate, attempts, known, fits=False)
    try:
        request = next(steps)
        while True:
            request = steps.send(_send(k, namespace, name, request))
    except StopIteration as done:
        result: Written | None = done.value
        return result


async def update_status_async(
    api: apiserver.Api,
    namespace: str,
    name: str,
    mutate: Mutation,
    attempts: int = 8,
    known: cabc.Mapping[str, Any] | None = None,
    parsed: incident.Incident | None = None,
) -> Written | None:
    """:func:`update_status` on the event loop (aiohttp): no worker thread, so no queue behind a few.

    ``parsed``: ``known`` as the caller validated it, so that it is not validated twice."""
    steps = _steps(namespace, name, mutate, attempts, known, fits=True, parsed=parsed)
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
    try:
        request = next(steps)
        while True:
            method, raw = request
            try:
                found = await api.call(method, path if raw is None else f"{path}/status", raw)
                answer: Answer = (200 if found is not None else 404, found)
            except apiserver.ApiError as error:
                if error.status not in (404, 409):
                    raise
                answer = (error.status, None)
            request = steps.send(answer)
    except StopIteration as done:
        result: Written | None = done.value
        return result


def _send(k: kube.Kube, namespace: str, name: str, request: Request) -> Answer:
    _, raw = request
    if raw is None:
        found = _get_raw(k, namespace, name)
        return (200 if found is not None else 404), found
    try:
        return 200, k.custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, raw, _request_timeout=kube.TIMEOUT
        )
    except kubernetes.client.ApiException as error:
        if error.status in (404, 409):
            return error.status, None
        raise


def _copy(known: cabc.Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of what the caller saw, with what a status PUT needs and nothing Kopf-specific."""
    meta = dict(known.get("metadata") or {})
    return {
        "apiVersion": known.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": known.get("kind", kinds.INCIDENT.kind),
        "metadata": meta,
        "spec": known.get("spec") or {},
        "status": known.get("status") or {},
    }


def _get_raw(k: kube.Kube, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        raw: dict[str, Any] = k.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=kube.TIMEOUT
        )
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return raw

"""Start the HTTP intake with the operator, and stop it with the operator.

The server (:mod:`~oncall_operator.adapters.intake`) runs on the operator's event loop at
``ONCALL_HTTP_ADDRESS`` (default ``0.0.0.0:8080``): Alertmanager's webhook, ``/healthz``,
``/readyz`` and ``/metrics``. Authentication is a bearer token from the Secret that
``ONCALL_INTAKE_TOKEN_SECRET`` names (key ``token``, in the operator's namespace); without it
anyone who reaches the port can open Incidents, which the start-up log says loudly.

Each write gets a snapshot of the operator's indices (Runbooks, and the namespaces of every
Incident name) taken here on the event loop, so that a new alert group costs two API requests
(:mod:`~oncall_operator.adapters.alert_incidents` says when the snapshot is not used). The
writes go through a client of their own (user agent ``oncall-operator/intake``): a pool of
connections no other loop of the operator queues on, and requests an audit log can attribute.
"""

import asyncio
import datetime as dt
import functools
import os
import time
from typing import Any

import kopf
import kubernetes
import urllib3

from oncall_operator.adapters import alert_incidents, intake, peering, workloads
from oncall_operator.api import GROUP, VERSION, kinds
from oncall_operator.domain import alerts
from oncall_operator.handlers import objects, settings

ADDRESS = os.environ.get("ONCALL_HTTP_ADDRESS", "0.0.0.0:8080")
TOKEN_SECRET = os.environ.get("ONCALL_INTAKE_TOKEN_SECRET", "")
TOKEN_KEY = "token"
READY_CACHE_SECONDS = 5.0
USER_AGENT = "oncall-operator/intake"  # the API server takes "oncall-operator" as the field manager


class Readiness:
    """Ready once the operator has started and the API server answers (asked at most every 5 s)."""

    def __init__(self, memo: Any) -> None:
        self.memo = memo
        self._checked, self._reason = 0.0, "not checked yet"

    async def __call__(self) -> str | None:
        if getattr(self.memo, "kube", None) is None:
            return "the operator is starting"
        if time.monotonic() - self._checked >= READY_CACHE_SECONDS:
            self._reason = await asyncio.to_thread(self._probe)
            self._checked = time.monotonic()
        return self._reason or None

    def _probe(self) -> str:
        try:
            kubernetes.client.VersionApi(self.memo.kube.api).get_code(_request_timeout=5)
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            return f"Kubernetes API not reachable: {error}"
        return ""


@kopf.index(GROUP, VERSION, kinds.INCIDENT.plural)
def incident_homes(namespace: str | None, name: str, **_: Any) -> dict[str, str]:
    """The namespaces of every Incident name: the intake opens a new alert group without a read first."""
    return {name: namespace or ""}


def _client(memo: Any) -> workloads.Api:
    """The intake's own API client (aiohttp), made at the first write (the operator's is configured by then)."""
    found: workloads.Api | None = getattr(memo, "intake_api", None)
    if found is None:
        found = memo.intake_api = workloads.Api(memo.kube, USER_AGENT)
    return found


def _seen(memo: Any, names: Any, payload: alerts.Payload) -> alert_incidents.Seen | None:
    """The indices' view for this delivery, or None while they are not filled or this replica stands by."""
    indices: objects.Indices | None = getattr(memo, "indices", None)
    candidates = indices.runbook_candidates() if indices is not None and peering.acting() else None
    where = names.get(alerts.incident_name(payload), ()) if candidates is not None else ()
    config = settings.CONFIG
    ready = functools.partial(objects.incident_verdict, indices) if indices and candidates is not None else None
    return alert_incidents.seen(payload, config.namespace, config.watch_namespaces, candidates, where, ready)


@kopf.on.startup()
async def start_intake(memo: Any, logger: kopf.Logger, **kwargs: Any) -> None:
    try:
        host, port = intake.parse_address(ADDRESS)
    except ValueError as error:
        raise kopf.PermanentError(str(error)) from None
    config = settings.CONFIG

    async def write(payload: alerts.Payload) -> intake.Accepted:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        seen = _seen(memo, kwargs["incident_homes"], payload)
        return await alert_incidents.write(_client(memo), payload, now, config.namespace, config.watch_namespaces, seen)

    async def read_token() -> str:
        try:
            value: str | None = await asyncio.to_thread(
                memo.kube.secret_value, config.namespace, TOKEN_SECRET, TOKEN_KEY
            )
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise intake.Unavailable(f"Secret {config.namespace}/{TOKEN_SECRET} not readable: {error}") from error
        if not value:
            raise intake.Unavailable(f"Secret {config.namespace}/{TOKEN_SECRET} has no key {TOKEN_KEY!r}")
        return value.strip()

    token = intake.Token(read_token) if TOKEN_SECRET else None
    if token is None:
        logger.warning(
            "ALERT INTAKE AUTHENTICATION IS DISABLED: anyone who reaches %s can open Incidents. "
            "Set ONCALL_INTAKE_TOKEN_SECRET to a Secret in %s with the key %r.",
            ADDRESS,
            config.namespace,
            TOKEN_KEY,
        )
    app = intake.build_app(intake.Intake(write=write, ready=Readiness(memo), token=token))
    try:
        memo.intake = await intake.serve(app, host, port)
    except OSError as error:
        raise kopf.PermanentError(f"cannot serve the intake on {ADDRESS}: {error}") from None
    where = ", ".join(f"{a[0]}:{a[1]}" for a in memo.intake.addresses if isinstance(a, tuple)) or ADDRESS
    logger.info("alert intake listening on %s (POST /api/v1/alerts, /healthz, /readyz, /metrics)", where)


@kopf.on.cleanup()
async def stop_intake(memo: Any, **_: Any) -> None:
    runner = getattr(memo, "intake", None)
    if runner is not None:
        await runner.cleanup()
    client = getattr(memo, "intake_api", None)
    if client is not None:
        await client.close()

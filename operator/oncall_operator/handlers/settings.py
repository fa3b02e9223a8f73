"""Operator-wide settings: where Kopf keeps its bookkeeping, watch timeouts, the API client.

Kopf's progress and diff-base go to ``oncall.dev/`` annotations, never into ``.status``
(which is ours, KEP-1623). Watches get server and client timeouts because a watch without
them can freeze silently on a half-open connection.
"""

import dataclasses
import logging
import os
from typing import Any

import kopf

from oncall_operator.adapters import kube


@dataclasses.dataclass(frozen=True)
class Config:
    """What the operator reads from its environment, with the defaults it runs on."""

    namespace: str = "oncall-system"
    recheck_seconds: float = 30.0
    tick_seconds: float = 5.0
    """How often each open Incident's escalation is looked at (ONCALL_TICK_SECONDS)."""
    watch_namespaces: tuple[str, ...] = ()
    """The ``run --namespace`` patterns (Kopf globs); empty means cluster-wide."""
    dry_run: bool = False
    """Operator-wide dry-run of remediations (ONCALL_DRY_RUN): plan and record, write nothing."""

    @classmethod
    def from_env(cls) -> "Config":
        return cls(
            namespace=os.environ.get("ONCALL_NAMESPACE", cls.namespace),
            recheck_seconds=float(os.environ.get("ONCALL_RECHECK_SECONDS", cls.recheck_seconds)),
            tick_seconds=float(os.environ.get("ONCALL_TICK_SECONDS", cls.tick_seconds)),
            watch_namespaces=tuple(p for p in os.environ.get("ONCALL_WATCH_NAMESPACES", "").split(",") if p),
            dry_run=os.environ.get("ONCALL_DRY_RUN", "").strip().lower() in ("1", "true", "yes", "on"),
        )


CONFIG = Config.from_env()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="oncall.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="oncall.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "oncall.dev/finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.INFO
    # Kopf would post every "Handler ... succeeded" log line as an Event: a write per handler run
    # (measured: ~1.5 of ~9 writes per remediation). Our own Events (kopf.info/warn) still post.
    settings.posting.loggers = False
    memo.kube = kube.Kube.connect()
    memo.kube.api.user_agent = "oncall-operator"  # the field manager its writes show in managedFields
    memo.config = CONFIG
    logger.info(
        "oncall-operator configured: namespace=%s recheck=%ss",
        CONFIG.namespace,
        CONFIG.recheck_seconds,
    )

"""Kopf's settings, and the operator's one start-up and one clean-up handler.

Kopf's progress goes to ``oncall.dev/`` annotations, never into ``.status`` (which is ours,
KEP-1623). Kopf keeps no diff base at all: it serves ``on.create``/``on.update`` handlers, and the
operator has none (``on.event`` and indices only), yet Kopf would deep-copy every object on every
event to build one (5 % of the operator's CPU in an alert storm, issue 18).
Watches get server and client timeouts because a watch without
them can freeze silently on a half-open connection. Everything else the operator runs is
started and stopped, in order, by :mod:`oncall_operator.executor.runtime`.
"""

import logging
from typing import Any

import kopf

from oncall_operator.adapters import apiserver, events
from oncall_operator.executor import config, runtime


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """A diff base of nothing: no change handler is registered, so no change is ever compared."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **kwargs: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="oncall.dev")
    settings.persistence.diffbase_storage = NoDiffBase(prefix="oncall.dev", key="last-handled-configuration")
    settings.persistence.finalizer = "oncall.dev/finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    # Kopf's listing in pages, not one answer (issue 18: 10,000 Incidents listed at once, when Kopf
    # still watched them, peaked a restarting replica at ~395 MiB).
    settings.watching.chunk_size = apiserver.PAGE
    settings.posting.level = logging.INFO
    # Kopf would post every "Handler ... succeeded" log line as an Event: a write per handler run
    # (measured: ~1.5 of ~9 writes per remediation). The operator's own Events still post.
    settings.posting.loggers = False
    cfg = config.CONFIG
    if cfg.peering is not None:
        settings.peering.lifetime = cfg.peering_lifetime
    posting = settings.posting
    reporter = events.Reporter(posting.reporting_component, posting.reporting_instance, posting.event_name_prefix)
    specs = (kwargs["policy_specs"], kwargs["runbook_specs"], kwargs["schedule_specs"])
    priority = settings.peering.priority if cfg.peering is not None else None
    try:
        memo.running = await runtime.start(cfg, reporter, specs, priority)
    except (ValueError, OSError) as error:
        raise kopf.PermanentError(f"cannot start: {error}") from None
    memo.ctx = memo.running.ctx
    memo.ctx.indices.windows, memo.ctx.indices.heartbeat_specs = (
        kwargs["maintenance_windows"],
        kwargs["heartbeat_specs"],
    )
    logger.info(
        "oncall-operator configured: namespace=%s recheck=%ss peering=%s; started",
        cfg.namespace,
        cfg.recheck_seconds,
        f"{cfg.peering} (priority {priority}, lifetime {cfg.peering_lifetime}s)" if cfg.peering else "standalone",
    )


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    running = getattr(memo, "running", None)
    if running is not None:
        await runtime.stop(running)

"""Sending claimed steps and recording how they went: shared by the escalation and a runbook's ``notify``.

Both flows claim a step as a Pending notification on the Incident before sending it
(:mod:`oncall_operator.domain.delivery`), so a kill between the claim and the outcome costs a
re-send under the same delivery id, never the message. This module is who claims in this
process (:data:`ME`), the send bounded in time (a black-holed channel fails after
:data:`SEND_TIMEOUT`, transiently, and is retried), and the status edit that writes the outcomes.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
import os
import socket
import time

from oncall_operator.adapters import incidents, peering
from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import incident, policy
from oncall_operator.domain import delivery, escalation, lifecycle
from oncall_operator.executor import config, context, signing

ME = delivery.Claimant(f"{(config.CONFIG.pod or socket.gethostname())[:80]}/{os.getpid()}/{int(time.time())}")
"""This process, as the claimant of the steps it sends: its pod (or host), pid and start; a restart is another."""


def claimant() -> delivery.Claimant:
    """:data:`ME`, knowing which replicas are alive when Kopf's peering identities are pods (``POD_ID``)."""
    alive = peering.live() if config.CONFIG.pod else None
    return ME if alive is None else dataclasses.replace(ME, live=alive)


SEND_TIMEOUT = ME.lease.total_seconds() / 2
"""A send (Secret reads and every channel's retries) is abandoned after this; its lease outlives it."""


async def deliver(
    ctx: context.Context,
    claimed: cabc.Sequence[escalation.Send],
    inc: incident.Incident,
    spec: policy.EscalationPolicySpec,
    namespace: str,
) -> list[dispatch.Result]:
    """The dispatcher, bounded: a send that outlives :data:`SEND_TIMEOUT` is a transient failure of its channels."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            links = await signing.person_links(ctx, inc, now)
            return await dispatch.deliver(claimed, inc, spec, ctx.secret_reader(namespace), ctx.http, now, links)
    except TimeoutError:
        late = f"no outcome within {SEND_TIMEOUT:g}s"
        return [dispatch.Result(s.key, c, False, f"{c}: {late}", True) for s in claimed for c in s.channels]


def record(results: cabc.Sequence[dispatch.Result], now: dt.datetime, window: dt.timedelta) -> incidents.Mutation:
    """The status edit that writes the outcomes onto the notifications this process claimed."""
    outcomes = [delivery.Outcome(r.key, r.channel, r.ok, r.detail, r.retryable) for r in results]

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None:
            return None
        status = incident.IncidentStatus.model_validate(current.status.model_dump())  # a deep copy, 15x faster
        for n in delivery.record(status.escalation.notifications, outcomes, now, ME, window):
            lifecycle.add(status, now, "NotificationFailed", n.message)
        return status if status != current.status else None

    return mutate

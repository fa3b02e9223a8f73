"""Everything the flows share at run time, made once at start-up: one typed object instead of Kopf's ``memo``.

Kopf hands every handler a shallow copy of its ``memo``, so attributes set on it by one
handler are lost to others; the one attribute the operator sets there is ``memo.ctx``, a
:class:`Context` made by :func:`oncall_operator.executor.runtime.start` in a known order. The
flows take the context (or the parts of it they need) as an argument; none reaches for a global.
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import dataclasses
from typing import TYPE_CHECKING

import aiohttp

from oncall_operator.adapters import answers, apiserver, events
from oncall_operator.adapters.kube import Kube, SecretValues
from oncall_operator.api import policy
from oncall_operator.domain import tenancy
from oncall_operator.executor import config, indices, patching

if TYPE_CHECKING:
    from oncall_operator.executor import oom, open_incidents, rechecks


@dataclasses.dataclass
class Context:
    config: config.Config
    kube: Kube
    """The official (blocking) client: Secrets, the Ready patches, ConfigMaps, peering objects."""
    api: apiserver.Api
    """The async client: Incident status writes, reads, Events."""
    intake_api: apiserver.Api
    """The intake's own client (user agent ``oncall-operator/intake``): a pool no other loop queues on."""
    http: aiohttp.ClientSession
    """The notifiers' session (Slack, PagerDuty, webhooks)."""
    secrets: SecretValues
    events: events.Poster
    indices: indices.Indices
    locks: patching.Locks[str]
    oom: oom.OomState
    incidents: open_incidents.OpenIncidents
    rechecks: rechecks.Rechecks
    """Schedules, Policies and Runbooks checked again every ONCALL_RECHECK_SECONDS (no Kopf timers)."""
    link_key: answers.LinkKey | None = None
    """The key answer links are signed with (None: ONCALL_LINK_KEY_SECRET or ONCALL_EXTERNAL_URL unset)."""

    def secret_reader(self, namespace: str) -> cabc.Callable[[policy.Channel], cabc.Awaitable[str | None]]:
        """How a notifier reads its channel's Secret value, in ``namespace`` (kept 30 s; blocking, so in a thread).

        Refuses (:class:`tenancy.Refused`) a channel that would send where the operator's allowlists
        do not allow, and a Secret that did not opt in: the tenancy rules, enforced at send time.
        """

        async def read(channel: policy.Channel) -> str | None:
            refused = tenancy.channel_refusal(channel, self.config.trust)
            if refused is not None:
                raise tenancy.Refused(refused)
            ref = channel.secret_ref
            if ref is None:
                return None
            if (kept := self.secrets.kept(namespace, ref.name, ref.key)) is not None:
                return kept  # every page of a storm: no thread hop for a value read seconds ago
            value: str | None = await asyncio.to_thread(self.secrets.value, namespace, ref.name, ref.key)
            return value

        return read

"""One channel's trouble is its own: the dispatcher against real local receivers (``adapters/notifiers/dispatch.py``).

A Secret that cannot be read fails its channel alone, retryably (the step is sent again), and
the other channel is delivered; a re-sent step carries the delivery id of its first send.
"""

import datetime as dt

import aiohttp
import pytest

from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import incident, policy
from oncall_operator.domain import escalation
from tests.peers import Peer

pytestmark = pytest.mark.timeout(30)
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def spec() -> policy.EscalationPolicySpec:
    return policy.EscalationPolicySpec.model_validate(
        {
            "levels": [{"name": "l1", "after": "0", "targets": [{"user": "ann"}], "channels": ["good", "broken"]}],
            "channels": [
                {"name": "good", "type": "Webhook", "secretRef": {"name": "good", "key": "url"}},
                {"name": "broken", "type": "Webhook", "secretRef": {"name": "broken", "key": "url"}},
            ],
            "severities": [{"severity": "critical", "response": "Page", "channels": ["good"]}],
        }
    )


def inc() -> incident.Incident:
    return incident.Incident(
        metadata={"name": "checkout-down", "namespace": "shop"},
        spec=incident.IncidentSpec(title="Checkout is down", severity="critical"),
    )


SEND = escalation.Send("page/L1/loop0@1", "page", 1, 0, ("good", "broken"), (), "Level 1: checkout is down")


async def test_an_unreadable_secret_fails_its_channel_alone_and_retryably(
    peer: Peer,
    session: aiohttp.ClientSession,
) -> None:
    async def secret(channel: policy.Channel) -> str | None:
        if channel.name == "broken":
            raise OSError("the API server did not answer")
        return peer.url("/hook/ok")

    results = await dispatch.deliver([SEND], inc(), spec(), secret, session, T0)
    by = {r.channel: r for r in results}
    assert by["good"].ok
    assert not by["broken"].ok and by["broken"].retryable and "could not read its Secret" in by["broken"].detail
    assert len(peer.accepted_at("/hook/ok")) == 1


async def test_a_resent_step_has_the_id_of_its_first_send(
    peer: Peer,
    session: aiohttp.ClientSession,
) -> None:
    async def secret(channel: policy.Channel) -> str | None:
        return peer.url("/hook/ok")

    one = escalation.Send(SEND.key, "page", 1, 0, ("good",), (), SEND.text)
    await dispatch.deliver([one], inc(), spec(), secret, session, T0)
    await dispatch.deliver([one], inc(), spec(), secret, session, T0 + dt.timedelta(minutes=3))
    other = escalation.Send("page/L2/loop0@1", "page", 2, 0, ("good",), (), "Level 2")
    await dispatch.deliver([other], inc(), spec(), secret, session, T0)
    ids = [body["id"] for body in peer.accepted_at("/hook/ok")]
    assert len(ids) == 3 and ids[0] == ids[1] != ids[2]

"""Reaching people through their own contact methods, against local peers that check the documented format.

Twilio (Messages and Calls: form-encoded, HTTP basic auth AccountSid:AuthToken, E.164 numbers,
a body of at most 1600 characters, inline TwiML of at most 4000), Slack's Web API
(``chat.postMessage`` with ``Authorization: Bearer xoxb-...``, ``{"ok": ...}`` answers) and
PagerDuty with an alert of its own per person paged, acknowledged per person too.
"""

import base64
import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import pytest

from oncall_operator.adapters import notifiers
from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import incident, policy
from oncall_operator.api.schedule import Member
from oncall_operator.domain import escalation, people, phone
from oncall_operator.domain.notices import NoticeKind
from tests.integration.test_notifiers import ROUTING_KEY, make_notice
from tests.peers import SLACK_BOT_TOKEN, TWILIO_SID, TWILIO_TOKEN, Peer

pytestmark = pytest.mark.timeout(30)

ADA = Member(name="Ada Lovelace \u00e9", email="ada@example.com", slack="U0ADA0001", phone="+4930123456")
BOB = Member.model_validate(
    {"name": "Bob", "phone": "+4930654321", "pagerDutyRoutingKey": {"name": "bob-pd", "key": "routingKey"}}
)
BOB_KEY = "B0B0000000000000000000000000000b"
MESSAGES = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
CALLS = f"/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"


def twilio_channel(peer: Peer) -> policy.Channel:
    return policy.Channel.model_validate(
        {
            "name": "phone",
            "type": "Twilio",
            "secretRef": {"name": "twilio", "key": "credentials"},
            "twilio": {"from": "+15005550006"},
            "endpoint": peer.url("/"),
        }
    )


def bot_channel(peer: Peer, to: str | None = None) -> policy.Channel:
    raw: dict[str, Any] = {
        "name": "slack-bot",
        "type": "SlackBot",
        "secretRef": {"name": "slack-bot", "key": "token"},
        "endpoint": peer.url("/api"),
    }
    if to:
        raw["slackBot"] = {"channel": to}
    return policy.Channel.model_validate(raw)


CREDENTIALS = f"{TWILIO_SID}:{TWILIO_TOKEN}\n"


async def test_twilio_sms_is_form_encoded_with_basic_auth_short_and_gsm(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    sender = notifiers.sender_for(twilio_channel(peer), CREDENTIALS, session, method="SMS")
    note = make_notice(recipients=[ADA], title="Checkout \u2014 d\u00e9j\u00e0 vu " + "x" * 600)
    delivery = await sender.send(note)
    assert delivery.ok and delivery.attempts == 1, delivery
    [got] = [r for r in peer.accepted if r.path == MESSAGES]
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert got.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert got.body["To"] == "+4930123456" and got.body["From"] == "+15005550006"
    body = got.body["Body"]
    assert len(body) <= phone.SMS_MAX and body.isascii() and "(CRITICAL) Checkout - deja vu" in body
    assert body.endswith("Ack: kubectl oncall ack inc-7f3a -n shop")
    assert "SM" in delivery.detail and TWILIO_TOKEN not in delivery.detail


async def test_twilio_call_reads_the_incident_with_escaped_twiml(peer: Peer, session: aiohttp.ClientSession) -> None:
    sender = notifiers.sender_for(twilio_channel(peer), CREDENTIALS, session, method="Voice")
    delivery = await sender.send(make_notice(recipients=[ADA], title="<Hangup/> & " + "y" * 5000))
    assert delivery.ok, delivery
    [got] = [r for r in peer.accepted if r.path == CALLS]
    twiml = got.body["Twiml"]
    root = ET.fromstring(twiml)
    assert len(twiml) <= phone.TWIML_MAX and [e.tag for e in root] == ["Say", "Pause", "Say", "Hangup"]
    assert "<Hangup/> &" in (root[0].text or "")  # said, not obeyed


async def test_twilio_wrong_token_is_refused_and_not_retried(peer: Peer, session: aiohttp.ClientSession) -> None:
    sender = notifiers.sender_for(twilio_channel(peer), f"{TWILIO_SID}:wrong-token", session)
    delivery = await sender.send(make_notice(recipients=[ADA]))
    assert not delivery.ok and not delivery.retryable and delivery.attempts == 1
    assert "401" in delivery.detail and "20003" in delivery.detail and "wrong-token" not in delivery.detail


async def test_twilio_person_without_a_phone_fails_without_a_request(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    sender = notifiers.sender_for(twilio_channel(peer), CREDENTIALS, session)
    delivery = await sender.send(make_notice(recipients=[Member(name="Cy")]))
    assert not delivery.ok and "Cy has no phone number" in delivery.detail and not peer.hits


@pytest.mark.parametrize("value", ["", "not-a-sid:token", f"{TWILIO_SID}:", "ACshort:tok"])
async def test_twilio_bad_secret_is_unusable_and_never_echoed(
    peer: Peer, session: aiohttp.ClientSession, value: str
) -> None:
    sender = notifiers.sender_for(twilio_channel(peer), value, session)
    delivery = await sender.send(make_notice(recipients=[ADA]))
    assert not delivery.ok and delivery.attempts == 0 and "Secret 'twilio'" in delivery.detail
    assert (value.split(":")[-1] or "zzz") not in delivery.detail.split("(")[-1] or value.endswith(":")


async def test_slack_bot_dm_to_the_member_id_with_a_bearer_token(peer: Peer, session: aiohttp.ClientSession) -> None:
    sender = notifiers.sender_for(bot_channel(peer, to="C0INCIDENTS"), SLACK_BOT_TOKEN, session, method="Slack")
    delivery = await sender.send(make_notice(recipients=[ADA]))
    assert delivery.ok and "posted to D0ADA0001" in delivery.detail, delivery
    [got] = [r for r in peer.accepted if r.path == "/api/chat.postMessage"]
    assert got.headers["Authorization"] == f"Bearer {SLACK_BOT_TOKEN}"
    assert got.headers["Content-Type"].startswith("application/json")
    assert got.body["channel"] == "U0ADA0001" and "<@U0ADA0001>" in got.body["blocks"][0]["text"]["text"]


async def test_slack_bot_posts_to_its_channel_for_a_level(peer: Peer, session: aiohttp.ClientSession) -> None:
    sender = notifiers.sender_for(bot_channel(peer, to="C0INCIDENTS"), SLACK_BOT_TOKEN, session)
    assert (await sender.send(make_notice())).ok
    assert peer.accepted[-1].body["channel"] == "C0INCIDENTS"


async def test_slack_bot_invalid_auth_is_not_retried_and_the_token_stays_secret(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    sender = notifiers.sender_for(bot_channel(peer), "xoxb-revoked", session, method="Slack")
    delivery = await sender.send(make_notice(recipients=[ADA]))
    assert not delivery.ok and not delivery.retryable and "invalid_auth" in delivery.detail
    assert "xoxb" not in delivery.detail
    unusable = await notifiers.sender_for(bot_channel(peer), "https://hooks.example/x", session).send(make_notice())
    assert not unusable.ok and "not a Slack token" in unusable.detail and "hooks.example" not in unusable.detail


def pd_policy(peer: Peer) -> policy.EscalationPolicySpec:
    return policy.EscalationPolicySpec.model_validate(
        {
            "levels": [{"name": "l1", "after": "0", "targets": [{"user": "Ada"}], "channels": ["pagerduty"]}],
            "channels": [
                {
                    "name": "pagerduty",
                    "type": "PagerDuty",
                    "secretRef": {"name": "pd", "key": "routingKey"},
                    "endpoint": peer.url("/v2/enqueue"),
                }
            ],
            "severities": [{"severity": "critical", "response": "Page", "channels": ["pagerduty"]}],
        }
    )


async def test_pagerduty_each_person_paged_gets_an_alert_of_their_own_and_each_is_acknowledged(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    spec = pd_policy(peer)
    keys = {"pd": ROUTING_KEY, "bob-pd": BOB_KEY}

    async def secret(channel: policy.Channel) -> str | None:
        assert channel.secret_ref is not None
        return keys[channel.secret_ref.name]

    inc_spec = incident.IncidentSpec(title="Checkout is down", severity="critical")
    status = incident.IncidentStatus(phase=incident.Phase.TRIGGERED, acknowledged_by="ada")
    inc = incident.Incident.model_validate(
        {"metadata": {"name": "checkout-down", "namespace": "shop"}, "spec": inc_spec.wire(), "status": status.wire()}
    )
    now = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    for kind in ("page", "acknowledge"):
        send = escalation.Send(f"{kind}@1", kind, 2, 0, ("pagerduty",), (ADA, BOB), "Level 2 (l2).")
        [result] = await dispatch.deliver([send], inc, spec, secret, session, now)
        assert result.ok and result.channel == "pagerduty" and "Bob: pagerduty: delivered" in result.detail, result
    events = [(e["event_action"], e["routing_key"], e["dedup_key"]) for e in peer.accepted_at("/v2/enqueue")]
    ada_key = f"oncall.dev/shop/checkout-down/{people.person_key(ADA.name)}"
    bob_key = f"oncall.dev/shop/checkout-down/{people.person_key('Bob')}"
    assert sorted(events) == sorted(
        [
            ("trigger", ROUTING_KEY, ada_key),
            ("trigger", BOB_KEY, bob_key),  # Bob's own PagerDuty service
            ("acknowledge", ROUTING_KEY, ada_key),
            ("acknowledge", BOB_KEY, bob_key),
        ]
    )


def test_notice_kinds_are_rendered_for_the_phone() -> None:
    for kind in NoticeKind:
        assert phone.sms_text(make_notice(kind=kind, recipients=[ADA]))
        ET.fromstring(phone.twiml(make_notice(kind=kind)))


async def test_the_war_room_is_opened_people_invited_and_the_incident_posted(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    spec = policy.EscalationPolicySpec.model_validate(
        {
            "levels": [{"name": "l3", "after": "0", "targets": [{"user": "Ada"}], "warRoom": True}],
            "channels": [bot_channel(peer).wire()],
            "severities": [{"severity": "critical", "response": "Page", "channels": ["slack-bot"]}],
        }
    )

    async def secret(channel: policy.Channel) -> str | None:
        return SLACK_BOT_TOKEN

    inc = incident.Incident.model_validate(
        {
            "metadata": {"name": "Checkout.Down", "namespace": "shop"},
            "spec": {"title": "Checkout is down", "severity": "critical"},
            "status": {"phase": "Triggered"},
        }
    )
    now = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    send = escalation.Send("war-room/L3/loop0@1", "war-room", 3, 0, ("slack-bot",), (ADA, BOB), "War room #inc.")
    [result] = await dispatch.deliver([send], inc, spec, secret, session, now)
    assert result.ok and "opened #inc-checkout-down" in result.detail, result
    created, invited, posted = [(r.path, r.body) for r in peer.accepted]
    assert created == ("/api/conversations.create", {"name": "inc-checkout-down", "is_private": False})
    assert invited[1] == {"channel": "C0ROOM0001", "users": "U0ADA0001"}  # Bob has no Slack member ID
    assert posted[1]["channel"] == "C0ROOM0001" and "Checkout is down" in posted[1]["text"]

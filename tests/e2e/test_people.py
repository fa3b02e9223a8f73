"""People reached by their own rules, end to end: the operator against the real API server and local peers.

L1 pages the primary (Ada) as a person: a Slack DM through the bot at once, an SMS a few seconds
later, and a PagerDuty alert of her own. Nobody acknowledges, so L2 pages the secondary (Bob) as a
person: an SMS to his phone, then a call, and a PagerDuty alert on his own service (his routing
key). L3 reaches the CTO (Cy) by a call, posts to the incidents channel and opens the war room. The acknowledgement
is mirrored to each person's PagerDuty alert. Level timings are generous (20 s apart): the tests
wait on conditions, the machine may be slow.
"""

import json
from typing import Any

from oncall_operator.domain import people
from tests.conftest import eventually
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_kubectl_plugin import oncall
from tests.peers import SLACK_BOT_TOKEN, TWILIO_SID, TWILIO_TOKEN, Peer

ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"
BOB_KEY = "B0BSOWNSERVICE000000000000000002"
ADA_PHONE, BOB_PHONE, CY_PHONE = "+4930100001", "+4930100002", "+4930100003"
MESSAGES = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
CALLS = f"/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"


def secret(name: str, key: str, value: str) -> dict[str, Any]:
    meta = {"name": name, "labels": {"oncall.dev/notifier": "true"}}  # a channel reads only Secrets that opt in
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {key: value}}


def setup(kubectl: Kubectl, namespace: str, peer: Peer) -> None:
    members = [
        {
            "name": "Ada",
            "slack": "U0ADA0001",
            "phone": ADA_PHONE,
            "notificationRules": [{"after": "0", "method": "Slack"}, {"after": "5s", "method": "SMS"}],
        },
        {
            "name": "Bob",
            "phone": BOB_PHONE,
            "pagerDutyRoutingKey": {"name": "bob-pagerduty", "key": "routingKey"},
            "notificationRules": [{"after": "0", "method": "SMS"}, {"after": "5s", "method": "Voice"}],
        },
        {"name": "Cy", "phone": CY_PHONE, "notificationRules": [{"after": "0", "method": "Voice"}]},
    ]
    role = {"name": "primary", "layers": [{"name": "w", "rotation": {"participants": ["Ada"], "start": "2026-01-05"}}]}
    second = {
        "name": "secondary",
        "layers": [{"name": "a", "rotation": {"participants": ["Bob"], "start": "2026-01-05"}}],
    }
    objects: list[dict[str, Any]] = [
        secret("pd", "routingKey", ROUTING_KEY),
        secret("bob-pagerduty", "routingKey", BOB_KEY),
        secret("twilio", "credentials", f"{TWILIO_SID}:{TWILIO_TOKEN}"),
        secret("slack-bot", "token", SLACK_BOT_TOKEN),
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "OnCallSchedule",
            "metadata": {"name": "team"},
            "spec": {"timeZone": "Europe/Berlin", "roles": [role, second], "members": members},
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "people"},
            "spec": {
                "ackTimeout": "10m",
                "levels": [
                    {
                        "name": "l1",
                        "after": "0",
                        "targets": [{"schedule": {"name": "team", "role": "primary"}}],
                        "channels": ["pagerduty"],
                    },
                    {
                        "name": "l2",
                        "after": "20s",
                        "targets": [{"schedule": {"name": "team", "role": "secondary"}}],
                        "channels": ["pagerduty"],
                    },
                    {
                        "name": "l3",
                        "after": "40s",
                        "unless": "Resolved",
                        "targets": [{"user": "Cy"}],
                        "channels": ["bot"],
                        "warRoom": True,
                    },
                ],
                "channels": [
                    {
                        "name": "pagerduty",
                        "type": "PagerDuty",
                        "secretRef": {"name": "pd", "key": "routingKey"},
                        "endpoint": peer.url("/v2/enqueue"),
                    },
                    {
                        "name": "phone",
                        "type": "Twilio",
                        "secretRef": {"name": "twilio", "key": "credentials"},
                        "twilio": {"from": "+15005550006"},
                        "endpoint": peer.url("/"),
                    },
                    {
                        "name": "bot",
                        "type": "SlackBot",
                        "secretRef": {"name": "slack-bot", "key": "token"},
                        "slackBot": {"channel": "C0INCIDENTS"},
                        "endpoint": peer.url("/api"),
                    },
                ],
                "severities": [{"severity": "critical", "response": "Page", "channels": ["pagerduty"]}],
                "links": [{"name": "Grafana", "url": "https://grafana.example.com/d/api?var-namespace={namespace}"}],
            },
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "checkout-down"},
            "spec": {"title": "Checkout is down", "severity": "critical", "escalationPolicyRef": {"name": "people"}},
        },
    ]
    for obj in objects:
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))


def texts_to(peer: Peer, number: str) -> list[str]:
    return [r.body["Body"] for r in peer.accepted if r.path == MESSAGES and r.body["To"] == number]


def calls_to(peer: Peer, number: str) -> list[str]:
    return [r.body["Twiml"] for r in peer.accepted if r.path == CALLS and r.body["To"] == number]


def slack_to(peer: Peer, channel: str) -> list[dict[str, Any]]:
    return [r.body for r in peer.accepted if r.path == "/api/chat.postMessage" and r.body["channel"] == channel]


def pd(peer: Peer) -> list[tuple[str, str, str]]:
    return [(e["event_action"], e["routing_key"], e["dedup_key"]) for e in peer.accepted_at("/v2/enqueue")]


def test_each_level_reaches_its_people_by_their_own_rules(
    kubectl: Kubectl, namespace: str, peer: Peer, operator_process: OperatorProcess
) -> None:
    setup(kubectl, namespace, peer)
    operator_process.start()
    incident = f"oncall.dev/{namespace}/checkout-down"
    ada, bob = (f"{incident}/{people.person_key(n)}" for n in ("Ada", "Bob"))

    # L1: Ada by a Slack DM at once, her own PagerDuty alert, then an SMS
    [dm] = eventually(lambda: slack_to(peer, "U0ADA0001"), 60, what="Ada's Slack DM")
    assert "Checkout is down" in dm["text"] and "grafana.example.com/d/api?var-namespace=" + namespace in json.dumps(dm)
    assert ("trigger", ROUTING_KEY, ada) in eventually(lambda: pd(peer), 30, what="Ada's PagerDuty alert")
    [sms] = eventually(lambda: texts_to(peer, ADA_PHONE), 60, what="Ada's SMS")
    assert "Checkout is down" in sms and len(sms) <= 306

    # nobody acknowledges: L2 pages Bob as a person, on his own PagerDuty service
    eventually(lambda: ("trigger", BOB_KEY, bob) in pd(peer), 90, what="Bob's own PagerDuty alert")
    [bob_sms] = eventually(lambda: texts_to(peer, BOB_PHONE), 30, what="Bob's SMS")
    assert "L2" in bob_sms
    [call] = eventually(lambda: calls_to(peer, BOB_PHONE), 60, what="the call to Bob")
    assert "<Say>" in call and "Checkout is down" in call

    # L3 reaches the CTO: a call to Cy, and the incidents channel hears of it
    eventually(lambda: calls_to(peer, CY_PHONE), 90, what="the call to Cy")
    [post] = eventually(lambda: slack_to(peer, "C0INCIDENTS"), 30, what="the post to the incidents channel")
    assert "Cy" in post["text"] and "Ada (level 1)" in json.dumps(post) and "Bob (level 2)" in json.dumps(post)

    # and the war room: the bot opens #inc-checkout-down, invites the people paged who have a member ID
    eventually(lambda: peer.accepted_at("/api/conversations.invite"), 30, what="the war room's invitations")
    assert peer.accepted_at("/api/conversations.create") == [{"name": "inc-checkout-down", "is_private": False}]
    assert peer.accepted_at("/api/conversations.invite")[0]["users"] == "U0ADA0001"
    status = kubectl.json("get", "incident/checkout-down", "-n", namespace)["status"]
    assert status["warRoom"] == "#inc-checkout-down"
    keys = [(n["key"].split("@")[0], n["channel"], n["result"]) for n in status["escalation"]["notifications"]]
    assert (f"page/L2/loop0/{people.person_key('Bob')}/r2", "phone", "Delivered") in keys
    assert len(keys) == len(set(keys)), keys  # every step recorded once

    ack = oncall(kubectl, namespace, "ack", "checkout-down")
    assert ack.returncode == 0, ack.stderr
    eventually(
        lambda: {("acknowledge", ROUTING_KEY, ada), ("acknowledge", BOB_KEY, bob)} <= set(pd(peer)),
        30,
        what="each person's PagerDuty alert acknowledged",
    )
    assert len(texts_to(peer, ADA_PHONE)) == 1 and len(calls_to(peer, BOB_PHONE)) == 1  # each rule step once

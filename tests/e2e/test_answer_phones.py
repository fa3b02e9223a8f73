"""Answering from the phone, end to end: an SMS reply and a call's "press 1", signed as Twilio signs them.

The operator texts and calls through the local Twilio peer (tests/peers.py); the tests then post
what Twilio would post back to ``/twilio/sms`` and ``/twilio/voice``, with ``X-Twilio-Signature``
computed over the operator's external URL and the parameters with the account's auth token (or,
for the forgeries, another). L2 pages Cy 45 s in; the answer stops it.
"""

import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from oncall_operator.domain import twilio_answers
from tests.conftest import eventually
from tests.e2e.answer_support import post, run_operator, status
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_escalation import due, loop_passed, open_incident, steps
from tests.peers import TWILIO_SID, TWILIO_TOKEN, Peer

pytestmark = pytest.mark.usefixtures("crds")
ADA, BOB, CY = "+4930100001", "+4930100002", "+4930100003"
OURS = "+15005550006"
MESSAGES = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
CALLS = f"/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"
L2 = "45s"


@pytest.fixture(scope="module")
def answering(kubectl: Kubectl, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    yield from run_operator(kubectl, tmp_path_factory)


def setup(kubectl: Kubectl, namespace: str, peer: Peer, primary: str, channel: str) -> None:
    """Ada (texted by the level's Twilio channel) or Bob (called by his own rule) at L1; Cy at L2."""
    members = [
        {"name": "Ada", "phone": ADA},
        {"name": "Bob", "phone": BOB, "notificationRules": [{"after": "0", "method": "Voice"}]},
        {"name": "Cy", "phone": CY},
    ]
    role = {
        "name": "primary",
        "layers": [{"name": "w", "rotation": {"participants": [primary], "start": "2026-01-05"}}],
    }
    labels = {"oncall.dev/notifier": "true"}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "twilio", "labels": labels},
            "stringData": {"credentials": f"{TWILIO_SID}:{TWILIO_TOKEN}"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook", "labels": labels},
            "stringData": {"url": peer.url(f"/hook/{namespace}")},
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "OnCallSchedule",
            "metadata": {"name": "team"},
            "spec": {"timeZone": "Europe/Berlin", "roles": [role], "members": members},
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "fast"},
            "spec": {
                "ackTimeout": "10m",
                "levels": [
                    {"name": "l1", "after": "0", "targets": [{"schedule": {"name": "team", "role": "primary"}}]}
                    | {"channels": [channel]},
                    {"name": "l2", "after": L2, "targets": [{"user": "Cy"}], "channels": ["phone"]},
                ],
                "channels": [
                    {
                        "name": "phone",
                        "type": "Twilio",
                        "secretRef": {"name": "twilio", "key": "credentials"},
                        "twilio": {"from": OURS},
                        "endpoint": peer.url("/"),
                    },
                    {"name": "hook", "type": "Webhook", "secretRef": {"name": "hook", "key": "url"}},
                ],
                "severities": [{"severity": "critical", "response": "Page", "channels": [channel]}],
            },
        },
    ]
    for obj in objects:
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))
    open_incident(kubectl, namespace)


def twilio(root: str, path: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> tuple[int, str]:
    """POST what Twilio would, signed over ``root + path`` (the operator's external URL)."""
    raw = urllib.parse.urlencode(params).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_answers.signature(token, root + path, params),
    }
    found: list[str] = []
    code = post(root + path, raw, headers, found)
    return code, found[0] if found else ""


def to(peer: Peer, path: str, number: str, field: str) -> list[str]:
    return [r.body[field] for r in peer.accepted if r.path == path and r.body["To"] == number]


def stopped(kubectl: Kubectl, namespace: str, peer: Peer) -> None:
    loop_passed(kubectl, namespace, peer, due(kubectl, namespace, L2))
    assert "page/L2/loop0" not in [k for k, _, _ in steps(kubectl, namespace)]
    assert to(peer, MESSAGES, CY, "Body") == []


def test_an_sms_reply_acknowledges_as_the_member_with_that_phone(
    kubectl: Kubectl, namespace: str, peer: Peer, answering: OperatorProcess
) -> None:
    setup(kubectl, namespace, peer, "Ada", "phone")
    [sms] = eventually(lambda: to(peer, MESSAGES, ADA, "Body"), 60, what="Ada's SMS")
    assert f"/answer/{namespace}/checkout-down/" in sms and sms.endswith("or reply ACK") and len(sms) <= 306
    root = f"http://127.0.0.1:{answering.http_port}"
    reply = {"MessageSid": "SM1", "AccountSid": TWILIO_SID, "From": ADA, "To": OURS, "Body": "ack"}

    assert twilio(root, "/twilio/sms", reply, token="not the auth token")[0] == 401  # forged
    assert twilio(root, "/twilio/sms", {**reply, "From": "+4930999999"})[1].count("No open incident paged you") == 1
    assert "Reply ACK or RESOLVE" in twilio(root, "/twilio/sms", {**reply, "Body": "hello"})[1]
    assert "as other-incident" in twilio(root, "/twilio/sms", {**reply, "Body": "ack other-incident"})[1]
    assert not status(kubectl, namespace).get("acknowledgedBy")

    code, answer = twilio(root, "/twilio/sms", {**reply, "Body": "ACK checkout-down"})
    assert code == 200 and "checkout-down acknowledged by Ada via sms." in answer and "<Message>" in answer
    st = status(kubectl, namespace)
    assert (st["phase"], st["acknowledgedBy"], st["acknowledgedVia"]) == ("Acknowledged", "Ada", "sms")
    stopped(kubectl, namespace, peer)


def test_pressing_1_on_the_page_call_acknowledges_as_the_person_called(
    kubectl: Kubectl, namespace: str, peer: Peer, answering: OperatorProcess
) -> None:
    setup(kubectl, namespace, peer, "Bob", "hook")
    [call] = eventually(lambda: to(peer, CALLS, BOB, "Twiml"), 60, what="the call to Bob")
    found = re.search(r'<Gather numDigits="1" timeout="10" method="POST" action="([^"]+)">', call)
    assert found, call
    action = found.group(1).replace("&amp;", "&")
    root = f"http://127.0.0.1:{answering.http_port}"
    assert action.startswith(root + "/twilio/voice?answer=")
    path = action[len(root) :]
    gather = {"CallSid": "CA1", "AccountSid": TWILIO_SID, "From": OURS, "To": BOB, "Digits": "1"}

    assert twilio(root, path, gather, token="not the auth token")[0] == 401
    assert "Nothing changed" in twilio(root, path, {**gather, "Digits": "2"})[1]
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert "signature does not match" in twilio(root, tampered, gather)[1]  # Twilio-signed, but not our link
    assert not status(kubectl, namespace).get("acknowledgedBy")

    code, answer = twilio(root, path, gather)
    assert code == 200 and "<Say>checkout-down acknowledged by Bob via voice. Thank you.</Say>" in answer
    st = status(kubectl, namespace)
    assert (st["phase"], st["acknowledgedBy"], st["acknowledgedVia"]) == ("Acknowledged", "Bob", "voice")
    stopped(kubectl, namespace, peer)

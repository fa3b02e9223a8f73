"""Answering a page from its link, end to end: a real browser, the real API server, a real SMTP server.

One operator for the module, with answer links on (its link key in a Secret of its namespace, its
external URL the loopback port it serves). L1 mails Ada and pages her PagerDuty alert; headless
Chromium at phone width opens the Acknowledge link taken from the e-mail aiosmtpd received, sees
the Incident and presses Acknowledge; the Incident says Ada acknowledged via link, and L2 and L3
(due while the test waits) are never sent. The hostile cases sign their own tokens with the
module's key (or another), so each refusal is exact. Screenshots go to ``$ONCALL_SCREENSHOTS``
when set (``docs/answer-page.png`` and ``docs/answer-done.png`` are committed from it).
"""

import datetime as dt
import json
import os
import pathlib
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from oncall_operator.domain import answer_links as al
from oncall_operator.domain import pagerduty_answers, slack_answers
from tests.conftest import eventually
from tests.e2e import cdp
from tests.e2e.answer_support import HOME, KEY, PD_SIGNING, SIGNING, post, run_operator, status
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_escalation import due, loop_passed, open_incident, pd_events, setup, steps
from tests.peers import Inbox, Peer

pytestmark = pytest.mark.usefixtures("crds")
LEVELS = ("75s", "80s")
"""L2 and L3: time enough for a slow machine to start a browser and press the button before L2."""


@pytest.fixture(scope="module")
def answering(kubectl: Kubectl, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    yield from run_operator(kubectl, tmp_path_factory)


def mail_links(box: Inbox) -> dict[str, str]:
    [mail] = eventually(lambda: box.messages, 60, what="the L1 e-mail")
    return dict(re.findall(r"^- (Acknowledge|Resolve|View): (\S+)\r?$", mail.get_content(), re.M))


def shots(tmp: pathlib.Path) -> pathlib.Path:
    folder = os.environ.get("ONCALL_SCREENSHOTS")
    return pathlib.Path(folder) if folder else tmp


async def test_acknowledge_from_the_mailed_link_in_a_phone_browser_stops_the_escalation(
    kubectl: Kubectl,
    namespace: str,
    peer: Peer,
    inbox: tuple[Inbox, int],
    answering: OperatorProcess,
    tmp_path: pathlib.Path,
) -> None:
    box, port = inbox
    setup(kubectl, namespace, peer, port, levels=LEVELS, ack_timeout="10m")
    open_incident(kubectl, namespace)
    links = mail_links(box)
    assert set(links) == {"Acknowledge", "Resolve", "View"}
    ack = links["Acknowledge"]
    assert ack.startswith(f"http://127.0.0.1:{answering.http_port}/answer/{namespace}/checkout-down/")
    [trigger] = eventually(lambda: peer.accepted_at("/v2/enqueue"), 30, what="Ada's PagerDuty alert")
    assert trigger["links"][0]["text"] == "Acknowledge"  # her own link, first, in the PagerDuty alert too

    async with cdp.Browser.launched(tmp_path / "profile") as browser:
        tab = await browser.tab()
        await tab.viewport(390, 844, mobile=True, scale=2)
        await tab.goto(ack)
        assert await tab.evaluate("document.querySelector('h1').textContent") == "Checkout is down"
        assert "Ada" in await tab.evaluate("document.querySelector('dl').textContent")
        assert status(kubectl, namespace)["phase"] == "Triggered"  # opening the link changed nothing
        await tab.screenshot(shots(tmp_path) / "answer-page.png")
        await tab.click("#ack button")

        async def answered() -> str | None:
            text = await tab.evaluate("document.querySelector('.notice')?.textContent")
            return str(text) if text else None

        notice = await cdp.until(answered, 60, "the page to say who acknowledged")
        assert notice == "checkout-down acknowledged by Ada via link."
        assert await tab.evaluate("document.querySelector('#ack')") is None  # nothing left to acknowledge
        await tab.screenshot(shots(tmp_path) / "answer-done.png")

    st = status(kubectl, namespace)
    assert (st["phase"], st["acknowledgedBy"], st["acknowledgedVia"]) == ("Acknowledged", "Ada", "link")
    timeline = st["timeline"]
    assert isinstance(timeline, list)
    entry = {"type": "Acknowledged", "message": "Acknowledged by Ada via link", "actor": "Ada"}
    assert any(entry.items() <= e.items() for e in timeline), timeline
    acked = dt.datetime.fromisoformat(str(st["acknowledgedAt"]))
    assert acked < due(kubectl, namespace, LEVELS[0]), "the browser acknowledged after L2's time: the test raced"
    eventually(lambda: pd_events(peer)[-1][0] == "acknowledge", 30, what="Ada's PagerDuty alert acknowledged")
    loop_passed(kubectl, namespace, peer, due(kubectl, namespace, LEVELS[1]))  # past L2 and L3: nothing more
    keys = [k for k, _, _ in steps(kubectl, namespace)]
    assert "page/L2/loop0" not in keys and "page/L3/loop0" not in keys
    assert peer.accepted_at("/services/ok/T000/B000/XXXXSECRETXXXX") == []  # L2 and L3's Slack: never
    kinds = [m["X-Oncall-Kind"] for m in box.messages]
    assert kinds[0] == "page" and set(kinds[1:]) <= {"acknowledge"}, kinds  # Ada is told of the ack, never paged again


def call(url: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_forged_expired_foreign_and_prefetched_links_change_nothing(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], answering: OperatorProcess
) -> None:
    setup(kubectl, namespace, peer, inbox[1], levels=("10m", "11m"), ack_timeout="10m")
    open_incident(kubectl, namespace)
    open_incident(kubectl, namespace, "payments-down", title="Payments are down")
    eventually(lambda: status(kubectl, namespace).get("phase"), 30, what="the Incident opened")
    eventually(lambda: status(kubectl, namespace, "payments-down").get("phase"), 30, what="the second opened")
    meta = kubectl.json("get", "incident/checkout-down", "-n", namespace)["metadata"]
    other = kubectl.json("get", "incident/payments-down", "-n", namespace)["metadata"]
    checkout = al.Incident(namespace, "checkout-down", meta["uid"])
    payments = al.Incident(namespace, "payments-down", other["uid"])
    root = f"http://127.0.0.1:{answering.http_port}"
    soon, key = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), KEY.encode()

    def url(inc: al.Incident, action: al.Action, k: bytes = key, until: dt.datetime = soon, on: str = "") -> str:
        token = al.sign(k, inc, "Ada", action, until)
        return root + (on or al.path(inc, token).rsplit("/", 1)[0]) + "/" + token

    ack = url(checkout, al.Action.ACKNOWLEDGE)
    before = status(kubectl, namespace)
    refused = [
        (url(checkout, al.Action.ACKNOWLEDGE, k=b"not the operator's key 0123"), 403),  # forged
        (url(checkout, al.Action.ACKNOWLEDGE, until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)), 403),
        (url(payments, al.Action.ACKNOWLEDGE, on=f"/answer/{namespace}/checkout-down"), 403),  # another's link
        (url(checkout, al.Action.ACKNOWLEDGE, on=f"/answer/{HOME}/checkout-down"), 403),  # another namespace
        (url(checkout, al.Action.VIEW), 405),  # a view link is no button
        (ack.rsplit("/", 1)[0] + "/" + "A" * 5000, 404),  # oversized
        (ack.rsplit("/", 1)[0] + "/garbage", 404),
        (ack.rsplit("/", 1)[0] + "/" + urllib.parse.quote("a.1.<script>.x.y"), 404),
        (f"{root}/answer/..%2F..%2Fkube-system/x/" + ack.rsplit("/", 1)[1], 403),
    ]
    for target, code in refused:
        got, page = call(target, data=b"")
        assert got == code, (target, got, page[:300])
        assert "<script>" not in page
    assert call(ack)[0] == 200  # a GET (a mail scanner's prefetch) shows the page
    after = status(kubectl, namespace)
    assert (after["phase"], after.get("acknowledgedBy") or "", after["timeline"]) == (
        "Triggered",
        "",
        before["timeline"],
    )

    # resolved with its own link; its acknowledge link then changes nothing
    code, page = call(url(checkout, al.Action.RESOLVE), data=b"")
    assert code == 200 and "checkout-down resolved by Ada via link." in page
    code, page = call(ack, data=b"")
    assert code == 409 and "already resolved" in page
    st = status(kubectl, namespace)
    assert (st["phase"], st["resolvedBy"], st["resolvedVia"], st.get("acknowledgedBy") or "") == (
        "Resolved",
        "Ada",
        "link",
        "",
    )
    # the other Incident's status update by its own link lands in its timeline, signed by the person
    code, page = call(url(payments, al.Action.UPDATE), data=b"update=rolling+back+%3Cb%3Enow%3C%2Fb%3E")
    assert code == 200 and "&lt;b&gt;now&lt;/b&gt;" in page
    last = status(kubectl, namespace, "payments-down")["timeline"][-1]  # type: ignore[index]
    assert (last["type"], last["actor"], last["message"]) == (
        "StatusUpdate",
        "Ada",
        "rolling back <b>now</b> (by Ada via link)",
    )

    # the same name made again: the old links are dead
    kubectl.run("delete", "incident/payments-down", "-n", namespace)
    open_incident(kubectl, namespace, "payments-down", title="Payments are down")
    eventually(lambda: status(kubectl, namespace, "payments-down").get("phase"), 30, what="the new one opened")
    code, _ = call(url(payments, al.Action.ACKNOWLEDGE), data=b"")
    assert code == 403 and not status(kubectl, namespace, "payments-down").get("acknowledgedBy")


def slack_click(root: str, user: str, value: str, response_url: str, signing: str = "", age: float = 0) -> int:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "response_url": response_url,
        "actions": [{"action_id": "oncall-ack", "value": value}],
        "message": {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "page"}}, {"type": "actions"}]},
    }
    raw = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time() - age))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts}
    headers["X-Slack-Signature"] = slack_answers.signature(signing or SIGNING, ts, raw)
    return post(f"{root}/slack/interactions", raw, headers)


def test_a_slack_button_acknowledges_as_the_member_who_pressed_it_and_the_message_says_so(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], answering: OperatorProcess
) -> None:
    setup(kubectl, namespace, peer, inbox[1], levels=("1s", "75s"), ack_timeout="10m")  # Slack at L2 (Ada, Bob)
    open_incident(kubectl, namespace)
    [post] = eventually(lambda: peer.accepted_at("/services/ok/T000/B000/XXXXSECRETXXXX"), 60, what="the L2 post")
    [actions] = [b for b in post["blocks"] if b["type"] == "actions"]
    value = actions["elements"][0]["value"]
    assert actions["elements"][0]["action_id"] == "oncall-ack" and value.startswith(f"{namespace}/checkout-down/")
    root, hook = f"http://127.0.0.1:{answering.http_port}", f"/hook/slack-{namespace}"
    reply = peer.url(hook)

    assert slack_click(root, "U0ADA0001", value, reply, signing="not the app's secret") == 401  # forged
    assert slack_click(root, "U0ADA0001", value, reply, age=301) == 401  # replayed after five minutes
    assert slack_click(root, "U0NOBODY1", value, reply) == 200  # signed, but nobody in the schedules
    forged_value = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
    assert slack_click(root, "U0ADA0001", forged_value, reply) == 200
    eventually(lambda: len(peer.accepted_at(hook)) == 2, 30, what="the two refusals")
    said = " | ".join(r["text"] for r in peer.accepted_at(hook))  # each refusal said privately, in any order
    assert "no member of this incident's schedules" in said and "signature does not match" in said
    assert all(r["replace_original"] is False for r in peer.accepted_at(hook))
    assert not status(kubectl, namespace).get("acknowledgedBy")

    assert slack_click(root, "U0ADA0001", value, reply) == 200
    st = status(kubectl, namespace)
    assert (st["phase"], st["acknowledgedBy"], st["acknowledgedVia"]) == ("Acknowledged", "Ada", "slack")
    [update] = eventually(
        lambda: [r for r in peer.accepted_at(hook) if r["replace_original"]], 30, what="the message update"
    )
    assert update["replace_original"] is True and "acknowledged by Ada via slack" in update["text"]
    assert [b["type"] for b in update["blocks"]] == ["section", "context"]  # the buttons are gone
    loop_passed(kubectl, namespace, peer, due(kubectl, namespace, "75s"))
    assert "page/L3/loop0" not in [k for k, _, _ in steps(kubectl, namespace)]


def pd_webhook(root: str, event_type: str, key: str, agent: str, secret: str = "") -> int:
    event = {
        "id": secrets.token_hex(8),
        "event_type": event_type,
        "resource_type": "incident",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "agent": {"id": "PADA001", "summary": agent, "type": "user_reference"},
        "data": {"id": "PINC001", "type": "incident", "status": "acknowledged", "incident_key": key},
    }
    raw = json.dumps({"event": event}).encode()
    sig = pagerduty_answers.signature(secret or PD_SIGNING, raw)
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": f"v1=00ff, {sig}"}
    return post(f"{root}/pagerduty/webhooks", raw, headers)


def test_an_acknowledgement_in_pagerduty_is_read_back_and_stops_the_escalation(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], answering: OperatorProcess
) -> None:
    levels = ("40s", "45s")
    setup(kubectl, namespace, peer, inbox[1], levels=levels, ack_timeout="10m")
    open_incident(kubectl, namespace)
    [trigger] = eventually(lambda: peer.accepted_at("/v2/enqueue"), 60, what="Ada's PagerDuty alert")
    key, root = trigger["dedup_key"], f"http://127.0.0.1:{answering.http_port}"

    assert pd_webhook(root, "incident.acknowledged", key, "Ada", secret="not the subscription's") == 401
    other = f"oncall.dev/{namespace}/no-such-incident/{key.rsplit('/', 1)[1]}"
    assert pd_webhook(root, "incident.acknowledged", other, "Ada") == 200  # nothing to answer: no retry
    assert pd_webhook(root, "incident.acknowledged", f"oncall.dev/{HOME}/checkout-down", "Ada") == 200
    assert pd_webhook(root, "incident.annotated", key, "Ada") == 200
    assert not status(kubectl, namespace).get("acknowledgedBy")

    assert pd_webhook(root, "incident.acknowledged", key, "Ada") == 200
    st = status(kubectl, namespace)
    assert (st["phase"], st["acknowledgedBy"], st["acknowledgedVia"]) == ("Acknowledged", "Ada", "pagerduty")
    assert dt.datetime.fromisoformat(str(st["acknowledgedAt"])) < due(kubectl, namespace, levels[0])
    loop_passed(kubectl, namespace, peer, due(kubectl, namespace, levels[1]))
    keys = [k for k, _, _ in steps(kubectl, namespace)]
    assert "page/L2/loop0" not in keys and "page/L3/loop0" not in keys

    assert pd_webhook(root, "incident.resolved", key, "Grace Hopper") == 200  # not a member: her PagerDuty name
    st = status(kubectl, namespace)
    assert (st["phase"], st["resolvedBy"], st["resolvedVia"]) == ("Resolved", "Grace Hopper (PagerDuty)", "pagerduty")

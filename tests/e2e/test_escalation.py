"""Escalation end to end: the operator pages real local receivers and a real SMTP server.

Seconds-scale policy (L1 at 0, L2 at 4s, L3 at 8s, ack due in 2s), the operator ticking
every half second. Where the test must act between two levels (acknowledge before L2, kill the
operator before L2), L2 and L3 come later (up to a minute), so that a busy machine cannot make
the test race the policy. Slack and PagerDuty payloads are validated by the receivers against the
documented fields; email goes through aiosmtpd. This module starts and kills its own
operators (``OperatorProcess``), so it does not use the shared ``operator`` fixture.

"Nothing more was sent" is asserted only after :func:`loop_passed` has seen the operator's
escalation loop finish a look at everything that was due, never after a pause.
"""

import datetime as dt
import itertools
import json
from typing import Any

from oncall_operator.domain import people
from tests.conftest import clock_past, eventually
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_kubectl_plugin import oncall
from tests.peers import Inbox, Peer

ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"


def setup(
    kubectl: Kubectl,
    namespace: str,
    peer: Peer,
    smtp_port: int,
    slack_mode: str = "ok",
    levels: tuple[str, str] = ("4s", "8s"),
    ack_timeout: str = "2s",
) -> None:
    """The schedule, its Secrets and the policy ``fast``: L1 at once, L2 and L3 at ``levels``."""
    slack_url = peer.url(f"/services/{slack_mode}/T000/B000/XXXXSECRETXXXX")
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pd", "labels": {"oncall.dev/notifier": "true"}},
            "stringData": {"routingKey": ROUTING_KEY},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "slack", "labels": {"oncall.dev/notifier": "true"}},
            "stringData": {"webhookURL": slack_url},
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "OnCallSchedule",
            "metadata": {"name": "team"},
            "spec": {
                "timeZone": "Europe/Berlin",
                "roles": [
                    {
                        "name": "primary",
                        "layers": [{"name": "weekly", "rotation": {"participants": ["Ada"], "start": "2026-01-05"}}],
                    },
                    {
                        "name": "secondary",
                        "layers": [{"name": "always", "rotation": {"participants": ["Bob"], "start": "2026-01-05"}}],
                    },
                ],
                "members": [
                    {"name": "Ada", "email": "ada@example.com", "slack": "U0ADA0001"},
                    {"name": "Bob", "email": "bob@example.com"},
                    {"name": "Cy", "email": "cy@example.com"},
                ],
            },
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "fast"},
            "spec": {
                "ackTimeout": ack_timeout,
                "levels": [
                    {
                        "name": "l1",
                        "after": "0",
                        "targets": [{"schedule": {"name": "team", "role": "primary"}}],
                        "channels": ["pagerduty", "email"],
                    },
                    {
                        "name": "l2",
                        "after": levels[0],
                        "targets": [
                            {"schedule": {"name": "team", "role": "primary"}},
                            {"schedule": {"name": "team", "role": "secondary"}},
                        ],
                        "channels": ["pagerduty", "slack"],
                    },
                    {"name": "l3", "after": levels[1], "targets": [{"user": "Cy"}], "channels": ["slack"]},
                ],
                "channels": [
                    {
                        "name": "pagerduty",
                        "type": "PagerDuty",
                        "secretRef": {"name": "pd", "key": "routingKey"},
                        "endpoint": peer.url("/v2/enqueue"),
                    },
                    {"name": "slack", "type": "Slack", "secretRef": {"name": "slack", "key": "webhookURL"}},
                    {
                        "name": "email",
                        "type": "Email",
                        "email": {
                            "smtpHost": "127.0.0.1",
                            "smtpPort": smtp_port,
                            "startTls": False,
                            "from": "oncall@example.com",
                        },
                    },
                ],
                "severities": [
                    {"severity": "critical", "response": "Page", "responseTime": "5m", "channels": ["pagerduty"]}
                ],
            },
        },
    ]
    for obj in objects:
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))


def open_incident(
    kubectl: Kubectl, namespace: str, name: str = "checkout-down", policy: str = "fast", title: str = "Checkout is down"
) -> None:
    incident = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {
            "title": title,
            "severity": "critical",
            "escalationPolicyRef": {"name": policy},
            "target": {"kind": "Deployment", "namespace": namespace, "name": "checkout"},
        },
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(incident))


def escalation(kubectl: Kubectl, namespace: str, name: str = "checkout-down") -> dict[str, Any]:
    status = kubectl.json("get", f"incident/{name}", "-n", namespace).get("status") or {}
    return dict(status.get("escalation") or {})


def notifications(kubectl: Kubectl, namespace: str, name: str = "checkout-down") -> list[dict[str, Any]]:
    return list(escalation(kubectl, namespace, name).get("notifications", []))


def steps(kubectl: Kubectl, namespace: str, name: str = "checkout-down") -> list[tuple[str, str, str]]:
    return [(n["key"].split("@")[0], n["channel"], n["result"]) for n in notifications(kubectl, namespace, name)]


def due(kubectl: Kubectl, namespace: str, after: str, name: str = "checkout-down") -> dt.datetime:
    """When a level ``after`` seconds (``"8s"``) into the Incident's escalation comes due."""
    started = dt.datetime.fromisoformat(escalation(kubectl, namespace, name)["startedAt"])
    return started + dt.timedelta(seconds=float(after.removesuffix("s")))


_MARKERS = itertools.count()


NOTIFIER = {"oncall.dev/notifier": "true"}
"""A channel reads only Secrets labelled so (README: Tenancy and trust)."""


def loop_passed(kubectl: Kubectl, namespace: str, peer: Peer, when: dt.datetime) -> None:
    """Wait until the operator's escalation loop has finished looking at everything due at ``when``.

    The positive marker before asserting that nothing (more) was sent. Two marker Incidents in
    turn, under the policy ``ticker`` whose second level is due 1 s after an Incident opens, so that
    a tick of the loop sends it (the first is sent by the look at its creation). The first opens once
    the clock has passed ``when``: the tick that pages its L2 looks at every Incident due by then. The
    second opens after that page, so the tick that pages its L2 starts after the first one's looks
    have all ended.
    """
    clock_past(when)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ticker", "labels": NOTIFIER}}
    secret["stringData"] = {"url": peer.url(f"/hook/ticker-{namespace}")}
    ticker = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "EscalationPolicy",
        "metadata": {"name": "ticker"},
        "spec": {
            "levels": [
                {"name": "opened", "after": "0", "targets": [{"user": "Cy"}], "channels": ["hook"]},
                {"name": "tick", "after": "1s", "targets": [{"user": "Cy"}], "channels": ["hook"]},
            ],
            "channels": [{"name": "hook", "type": "Webhook", "secretRef": {"name": "ticker", "key": "url"}}],
            "severities": [{"severity": "critical", "response": "Page", "responseTime": "5m", "channels": ["hook"]}],
        },
    }
    for obj in (secret, ticker):
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))
    for _ in range(2):
        name = f"tick-{next(_MARKERS)}"
        open_incident(kubectl, namespace, name, "ticker", "Marker: the escalation loop ticked")
        eventually(
            lambda: ("page/L2/loop0", "hook", "Delivered") in steps(kubectl, namespace, name),  # noqa: B023
            60,
            what=f"the marker Incident {name} paged by a tick",
        )


def pd_events(peer: Peer) -> list[tuple[str, str]]:
    return [(e["event_action"], e.get("payload", {}).get("summary", "")) for e in peer.accepted_at("/v2/enqueue")]


ONCE_EACH = {1: (1, 0), 2: (2, 1), 3: (0, 1)}
"""Every level of ``fast`` sent once, as (PagerDuty triggers: an alert per person, Slack messages)."""


def pages_per_level(kubectl: Kubectl, namespace: str, peer: Peer) -> dict[int, tuple[int, int]]:
    """What the receivers got per level of ``fast`` (compare with :data:`ONCE_EACH`); no step claimed twice."""
    keys = [(k, c) for k, c, _ in steps(kubectl, namespace)]
    assert len(keys) == len(set(keys)), f"a step was claimed twice: {keys}"
    triggers = [s for action, s in pd_events(peer) if action == "trigger"]
    slack = [json.dumps(m) for m in peer.accepted_at("/services/ok/T000/B000/XXXXSECRETXXXX")]
    return {
        level: (sum(f"Level {level} (l{level})" in s for s in triggers), sum(f"Level {level}" in t for t in slack))
        for level in (1, 2, 3)
    }


def test_pages_through_pagerduty_email_and_slack_until_acknowledged(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], operator_process: OperatorProcess
) -> None:
    box, port = inbox
    # the checks of the first page have 30 s before its ack reminder, and `kubectl oncall ack` 60 s before L2:
    # on a 2-core machine under load the plugin's Python start-up alone took 20 s
    levels = ("60s", "64s")
    setup(kubectl, namespace, peer, port, levels=levels, ack_timeout="30s")
    operator_process.start()
    open_incident(kubectl, namespace)
    eventually(
        lambda: ("page/L1/loop0", "email", "Delivered") in steps(kubectl, namespace), 30, what="L1 page delivered"
    )
    [(action, summary)] = eventually(lambda: pd_events(peer), 30, what="the PagerDuty trigger")
    assert action == "trigger" and "Level 1 (l1)" in summary and "Checkout is down" in summary
    [event] = peer.accepted_at("/v2/enqueue")
    assert event["routing_key"] == ROUTING_KEY and event["payload"]["severity"] == "critical"
    assert event["dedup_key"] == f"oncall.dev/{namespace}/checkout-down/{people.person_key('Ada')}"  # Ada's own alert
    [mail] = box.messages
    assert mail["To"] == "ada@example.com" and mail["Subject"].startswith("[CRITICAL]")
    assert "kubectl oncall ack checkout-down" in mail.get_content()
    status = kubectl.json("get", "incident/checkout-down", "-n", namespace)["status"]
    assert status["onCall"] == "Ada" and status["escalation"]["level"] == 1

    ack = oncall(kubectl, namespace, "ack", "checkout-down")
    assert ack.returncode == 0, ack.stderr
    eventually(
        lambda: (
            ("acknowledge", f"oncall.dev/{namespace}/checkout-down/{people.person_key('Ada')}")
            in [(e["event_action"], e["dedup_key"]) for e in peer.accepted_at("/v2/enqueue")]
        ),
        30,
        what="PagerDuty acknowledge",
    )
    acked = kubectl.json("get", "incident/checkout-down", "-n", namespace)["status"]["acknowledgedAt"]
    assert dt.datetime.fromisoformat(acked) < due(kubectl, namespace, levels[0]), "the ack came after L2's time"
    loop_passed(kubectl, namespace, peer, due(kubectl, namespace, levels[1]))  # past L2 and L3: it must not climb
    keys = [k for k, _, _ in steps(kubectl, namespace)]
    assert "page/L2/loop0" not in keys and "page/L3/loop0" not in keys
    assert peer.accepted_at("/services/ok/T000/B000/XXXXSECRETXXXX") == []  # slack is only on L2 and L3
    events = pd_events(peer)
    assert events[0][0] == "trigger" and events[-1][0] == "acknowledge"
    # between them at most L1's own ack reminder (due after 30s, the machine may be slow to ack): never L2
    assert all("Level 1 (l1)" in summary or "overdue" in summary for action, summary in events[1:-1])
    assert len(events) <= 3


def test_restart_mid_escalation_neither_repeats_nor_skips_a_step(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], operator_process: OperatorProcess
) -> None:
    levels = ("15s", "19s")  # the kill comes well before L2, even on a busy machine
    setup(kubectl, namespace, peer, inbox[1], levels=levels, ack_timeout="10s")
    operator_process.start()
    open_incident(kubectl, namespace)
    eventually(lambda: ("page/L1/loop0", "pagerduty", "Delivered") in steps(kubectl, namespace), 30, what="L1 page")
    operator_process.kill()  # like a crashed pod: nothing is flushed, nothing said
    assert "page/L2/loop0" not in [k for k, _, _ in steps(kubectl, namespace)]  # killed before L2 was due
    clock_past(due(kubectl, namespace, levels[0]), "L2 due while no operator runs")
    operator_process.start()
    eventually(
        lambda: ("page/L3/loop0", "slack", "Delivered") in steps(kubectl, namespace), 60, what="L3 after the restart"
    )
    loop_passed(kubectl, namespace, peer, due(kubectl, namespace, levels[1]))  # anything sent twice was sent by now
    late = "oncall_escalation_page_lateness_seconds"  # L2 was due while no operator ran: paged late, and said so
    assert (operator_process.metric(f"{late}_count", level="2") or 0) >= 1
    assert (operator_process.metric(f"{late}_sum", level="2") or 0) > 0
    keys = [(k, c) for k, c, _ in steps(kubectl, namespace)]
    assert len(keys) == len(set(keys)), f"a step was recorded twice: {keys}"
    # every level paged exactly once; L1's ack reminder, due at 10s while nobody ran, is moot once L2 pages
    assert {k for k, _ in keys} >= {"page/L1/loop0", "page/L2/loop0", "page/L3/loop0"}
    summaries = [s for a, s in pd_events(peer) if a == "trigger"]
    assert sum("Level 1 (l1)" in s for s in summaries) == 1
    assert sum("Level 2 (l2)" in s for s in summaries) == 2  # an alert of their own for Ada and for Bob
    slack = peer.accepted_at("/services/ok/T000/B000/XXXXSECRETXXXX")
    texts = [json.dumps(m) for m in slack]
    assert sum("Level 3 (l3)" in t for t in texts) == 1 and sum("Level 2 (l2)" in t for t in texts) == 1
    assert "<@U0ADA0001>" in next(t for t in texts if "Level 2 (l2)" in t)  # Ada's Slack ID from the members
    assert operator_process.starts == 2


def test_a_next_step_named_in_the_past_with_nothing_due_is_written_right_once(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], operator_process: OperatorProcess
) -> None:
    """A status naming a step already past that is not due (an Incident escalated before the last loop
    stopped naming a next loop, issue 18) ranks "due now" at every listing and takeover and costs a look
    at each: the look that finds nothing due writes the right ``nextStepAt``, and sends nothing."""
    setup(kubectl, namespace, peer, inbox[1], levels=("1s", "2s"), ack_timeout="10m")
    operator_process.start()
    open_incident(kubectl, namespace)
    eventually(lambda: ("page/L3/loop0", "slack", "Delivered") in steps(kubectl, namespace), 30, what="L3 page")
    eventually(lambda: all(r != "Pending" for _, _, r in steps(kubectl, namespace)), 30, what="every outcome")
    sent, right = steps(kubectl, namespace), escalation(kubectl, namespace)["nextStepAt"]
    assert dt.datetime.fromisoformat(right) > dt.datetime.now(dt.UTC), "the ack reminder, minutes ahead"
    stale = json.dumps({"status": {"escalation": {"nextStepAt": "2026-01-01T00:00:00Z"}}})
    kubectl.run("patch", "incident/checkout-down", "-n", namespace, "--subresource=status", "--type=merge", "-p", stale)
    eventually(
        lambda: escalation(kubectl, namespace).get("nextStepAt") == right, 30, what="the next step written right"
    )
    assert steps(kubectl, namespace) == sent, "nothing sent again"


def test_a_failing_channel_is_recorded_and_does_not_block_the_others(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], operator_process: OperatorProcess
) -> None:
    setup(kubectl, namespace, peer, inbox[1], slack_mode="revoked")
    operator_process.start()
    open_incident(kubectl, namespace)
    eventually(lambda: ("page/L2/loop0", "slack", "Failed") in steps(kubectl, namespace), 30, what="the Slack failure")
    assert ("page/L2/loop0", "pagerduty", "Delivered") in steps(kubectl, namespace)
    status = kubectl.json("get", "incident/checkout-down", "-n", namespace)["status"]
    failed = [e for e in status["timeline"] if e["type"] == "NotificationFailed"]
    assert failed and "slack" in failed[0]["message"] and "404" in failed[0]["message"]
    assert "XXXXSECRETXXXX" not in json.dumps(status)  # the webhook URL is a credential
    timeline = oncall(kubectl, namespace, "timeline", "checkout-down").stdout
    assert "NotificationFailed" in timeline

    def warnings() -> list[str]:  # a failed page is a Warning Event too: where cluster tooling looks for trouble
        found = kubectl.json("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=checkout-down")
        return [e["message"] for e in found["items"] if e["type"] == "Warning" and e["reason"] == "Page"]

    assert any("Level 2" in m for m in eventually(lambda: warnings() or None, 30, what="the Warning Event"))


def test_incidents_carry_no_kopf_state_and_delete_without_an_operator(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], operator_process: OperatorProcess
) -> None:
    """Escalation timing lives in the operator's loop, not in Kopf timers: no finalizer, no annotations."""
    setup(kubectl, namespace, peer, inbox[1])
    operator_process.start()
    open_incident(kubectl, namespace)
    eventually(lambda: ("page/L2/loop0", "pagerduty", "Delivered") in steps(kubectl, namespace), 30, what="L2 page")
    meta = kubectl.json("get", "incident/checkout-down", "-n", namespace)["metadata"]

    found = kubectl.json("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=checkout-down")
    assert not [e for e in found["items"] if e["reason"] == "Page"]  # a delivered page is no Event (issue 18)
    assert not meta.get("finalizers"), meta.get("finalizers")
    assert not [a for a in meta.get("annotations") or {} if a.startswith("oncall.dev/")], meta.get("annotations")
    operator_process.stop()
    kubectl.run("delete", "incident/checkout-down", "-n", namespace, "--wait=true", "--timeout=20s")
    assert kubectl.run("get", "incident/checkout-down", "-n", namespace, check=False).returncode != 0

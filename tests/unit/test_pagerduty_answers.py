"""PagerDuty v3 webhook signatures and events, as a table of what a forger or another integration sends."""

import json

import pytest

from oncall_operator.domain import answer_links, notices, pagerduty_answers, people

SECRET = "whsec-0123456789abcdef"


def body(event_type: str = "incident.acknowledged", key: str = "", agent: object = None) -> bytes:
    key = key or notices.person_dedup_key("shop", "checkout-down", people.person_key("Ada"))
    event = {
        "id": "01DEN3E9A4TDR2Q8N5UO5UA7LY",
        "event_type": event_type,
        "resource_type": "incident",
        "occurred_at": "2026-12-01T03:00:00.000Z",
        "agent": agent if agent is not None else {"id": "PLH1HKV", "summary": "Ada", "type": "user_reference"},
        "data": {"id": "PGR0VU2", "type": "incident", "status": "acknowledged", "incident_key": key},
    }
    return json.dumps({"event": event}).encode()


ACK = body()


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        pagerduty_answers.signature("another secret", ACK),
        pagerduty_answers.signature(SECRET, ACK + b" "),
        pagerduty_answers.signature(SECRET, ACK).replace("v1=", "v0="),
        pagerduty_answers.signature(SECRET, ACK)[:-1],
        "v1=" + "0" * 64,
    ],
)
def test_unsigned_and_forged_webhooks_are_401(header: str | None) -> None:
    with pytest.raises(answer_links.RequestRefused) as refused:
        pagerduty_answers.verify(SECRET, header, ACK)
    assert refused.value.status == 401


def test_any_of_several_signatures_is_enough_while_a_secret_rotates() -> None:
    good = pagerduty_answers.signature(SECRET, ACK)
    pagerduty_answers.verify(SECRET, f"v1=deadbeef, {good}", ACK)
    pagerduty_answers.verify(SECRET, good, ACK)


@pytest.mark.parametrize(
    ("raw", "event"),
    [
        (ACK, pagerduty_answers.Event("ack", "shop", "checkout-down", people.person_key("Ada"), "Ada")),
        (
            body("incident.resolved", "oncall.dev/shop/checkout-down"),
            pagerduty_answers.Event("resolve", "shop", "checkout-down", "", "Ada"),
        ),
        (body(agent={"type": "service_reference", "summary": "svc"}), "no agent"),  # a service, not a user
        (body("incident.triggered"), None),
        (body("incident.annotated"), None),
        (body(key="some-other-integration/123"), None),  # not our dedup key
        (body(key="oncall.dev/shop"), None),
        (body(key="oncall.dev/shop/a/b/c"), None),
        (body(key="oncall.dev/" + "x" * 230 + "~abcd"), None),  # shortened: cannot be mapped back
    ],
)
def test_events_map_to_the_incident_by_dedup_key(raw: bytes, event: object) -> None:
    got = pagerduty_answers.parse(raw)
    if event == "no agent":
        assert got is not None and got.agent == ""
    else:
        assert got == event


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"event": 1}', b"\xff", b'{"nope": {}}'])
def test_garbage_is_400(raw: bytes) -> None:
    with pytest.raises(answer_links.RequestRefused) as refused:
        pagerduty_answers.parse(raw)
    assert refused.value.status == 400

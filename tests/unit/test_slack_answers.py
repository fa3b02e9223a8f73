"""Slack's request signing (v0, five-minute window) and the click payload, as a table of what a forger tries."""

import datetime as dt
import json
import urllib.parse

import pytest

from oncall_operator.domain import answer_links, notices, slack_answers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_764_560_000.0
TS = str(int(NOW))


def body(payload: object) -> bytes:
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


CLICK = body(
    {
        "type": "block_actions",
        "user": {"id": "U0ADA0001"},
        "response_url": "https://hooks.slack.com/actions/T1/2/x",
        "actions": [{"action_id": "oncall-ack", "value": "shop/checkout-down/a.1.2.3.4"}],
        "message": {"blocks": [{"type": "section"}, {"type": "actions"}]},
    }
)


def test_slack_documented_example_signature() -> None:
    # api.slack.com/authentication/verifying-requests-from-slack: the documented example
    raw = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_answers.signature(SECRET, "1531420618", raw) == expected
    slack_answers.verify(SECRET, "1531420618", expected, raw, 1531420618 + 10)


@pytest.mark.parametrize(
    ("timestamp", "sig", "raw", "now"),
    [
        (TS, None, CLICK, NOW),
        (None, slack_answers.signature(SECRET, TS, CLICK), CLICK, NOW),
        (TS, slack_answers.signature("another secret", TS, CLICK), CLICK, NOW),  # forged
        (TS, slack_answers.signature(SECRET, TS, CLICK), CLICK + b"&x=1", NOW),  # body changed
        (TS, slack_answers.signature(SECRET, TS, CLICK), CLICK, NOW + 301),  # replayed after the window
        (TS, slack_answers.signature(SECRET, TS, CLICK), CLICK, NOW - 301),  # from the future
        (str(int(NOW) - 1), slack_answers.signature(SECRET, TS, CLICK), CLICK, NOW),  # another timestamp
        ("1e9", slack_answers.signature(SECRET, "1e9", CLICK), CLICK, NOW),
        (TS, slack_answers.signature(SECRET, TS, CLICK).upper(), CLICK, NOW),
        (TS, "v1=" + slack_answers.signature(SECRET, TS, CLICK)[3:], CLICK, NOW),
    ],
)
def test_unsigned_forged_and_replayed_requests_are_401(
    timestamp: str | None, sig: str | None, raw: bytes, now: float
) -> None:
    with pytest.raises(answer_links.RequestRefused) as refused:
        slack_answers.verify(SECRET, timestamp, sig, raw, now)
    assert refused.value.status == 401


def test_a_click_is_parsed_and_other_interactions_are_left_alone() -> None:
    slack_answers.verify(SECRET, TS, slack_answers.signature(SECRET, TS, CLICK), CLICK, NOW + 299)
    click = slack_answers.parse(CLICK)
    assert click is not None
    assert (click.user, click.value, click.response_url) == (
        "U0ADA0001",
        "shop/checkout-down/a.1.2.3.4",
        "https://hooks.slack.com/actions/T1/2/x",
    )
    update = slack_answers.answered(click.blocks, "checkout-down acknowledged by Ada via slack.")
    assert update["replace_original"] is True and [b["type"] for b in update["blocks"]] == ["section", "context"]
    assert slack_answers.parse(body({"type": "view_submission"})) is None
    other = {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "someone-elses"}]}
    assert slack_answers.parse(body(other)) is None
    for bad in (b"", b"payload=not-json", b"\xff\xfe", body({"type": "block_actions", "actions": []}), b"x=1"):
        with pytest.raises(answer_links.RequestRefused) as refused:
            slack_answers.parse(bad)
        assert refused.value.status == 400


def test_a_page_on_slack_has_the_buttons_with_the_signed_paths() -> None:
    link = "https://oncall.example.com/answer/shop/checkout-down/a.1.2.3.4"
    note = notices.Notice(
        kind=notices.NoticeKind.PAGE,
        namespace="shop",
        name="checkout-down",
        title="t",
        severity="critical",
        timestamp=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        links=[("Acknowledge as Ada", link), ("Acknowledge as Bob", link + "b"), ("Resolve", link + "r")],
    )
    [actions] = [b for b in notices.slack_payload(note)["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("oncall-ack", "shop/checkout-down/a.1.2.3.4"),
        ("oncall-resolve", "shop/checkout-down/a.1.2.3.4r"),
    ]
    plain = notices.Notice(**{**note.__dict__, "links": [("Grafana", "https://grafana.example.com")]})
    assert not [b for b in notices.slack_payload(plain)["blocks"] if b["type"] == "actions"]

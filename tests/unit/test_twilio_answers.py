"""Twilio's request signature, SMS replies and the call's gather, as tables of what a forger or a person sends."""

import datetime as dt

import pytest

from oncall_operator.domain import answer_links, notices, phone, twilio_answers

PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def test_twilio_documented_example_signature() -> None:
    assert twilio_answers.signature("12345", URL, PARAMS) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    twilio_answers.verify("12345", URL, PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


@pytest.mark.parametrize(
    ("url", "params", "given"),
    [
        (URL, PARAMS, None),
        (URL, PARAMS, ""),
        (URL, PARAMS, twilio_answers.signature("another token", URL, PARAMS)),
        (URL, {**PARAMS, "Digits": "1"}, twilio_answers.signature("12345", URL, PARAMS)),  # a digit changed
        (URL, {**PARAMS, "From": "+10000000000"}, twilio_answers.signature("12345", URL, PARAMS)),  # another phone
        (URL + "&x=1", PARAMS, twilio_answers.signature("12345", URL, PARAMS)),  # another URL (another answer path)
        ("http://mycompany.com/myapp.php?foo=1&bar=2", PARAMS, twilio_answers.signature("12345", URL, PARAMS)),
    ],
)
def test_unsigned_and_forged_requests_are_401(url: str, params: dict[str, str], given: str | None) -> None:
    with pytest.raises(answer_links.RequestRefused) as refused:
        twilio_answers.verify("12345", url, params, given)
    assert refused.value.status == 401


A, R = answer_links.Action.ACKNOWLEDGE, answer_links.Action.RESOLVE


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("ack", twilio_answers.Reply(A, "")),
        (" ACK ", twilio_answers.Reply(A, "")),
        ("Ok", twilio_answers.Reply(A, "")),
        ("ack checkout-down", twilio_answers.Reply(A, "checkout-down")),
        ("ACK shop/Checkout-Down.", twilio_answers.Reply(A, "shop/checkout-down")),
        ("resolve", twilio_answers.Reply(R, "")),
        ("resolved checkout-down", twilio_answers.Reply(R, "checkout-down")),
        ("", None),
        ("stop", None),
        ("ack a b", None),
        ("please ack", None),
    ],
)
def test_sms_replies(text: str, reply: twilio_answers.Reply | None) -> None:
    assert twilio_answers.parse_sms(text) == reply


def test_the_call_gathers_press_1_into_the_voice_route_with_the_signed_path() -> None:
    ack = "https://oncall.example.com/answer/shop/checkout-down/a.1.2.3.4"
    note = notices.Notice(
        kind=notices.NoticeKind.PAGE,
        namespace="shop",
        name="checkout-down",
        title='Checkout <is> "down" & out',
        severity="critical",
        timestamp=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        links=[("Acknowledge", ack)],
    )
    twiml = phone.twiml(note)
    action = "https://oncall.example.com/twilio/voice?answer=shop/checkout-down/a.1.2.3.4"
    assert f'<Gather numDigits="1" timeout="10" method="POST" action="{action}">' in twiml
    assert "Press 1 to acknowledge." in twiml and "&lt;is&gt;" in twiml and len(twiml) <= phone.TWIML_MAX
    resolved = notices.Notice(**{**note.__dict__, "kind": notices.NoticeKind.RESOLVE})
    assert "<Gather" not in phone.twiml(resolved)
    assert "<Gather" not in phone.twiml(notices.Notice(**{**note.__dict__, "links": ()}))
    assert twilio_answers.message("a <b> & c") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>a &lt;b&gt; &amp; c</Message></Response>'
    )

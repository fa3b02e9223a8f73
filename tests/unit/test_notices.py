"""The renderers: every kind through every channel's payload, truncation, severity, escaping."""

import datetime as dt
import email.utils

import pytest

from oncall_operator.api import base
from oncall_operator.api.schedule import Member
from oncall_operator.domain import notices
from oncall_operator.domain.notices import Notice, NoticeKind

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
ANN = Member(name="Ann Example", email="ann@example.com", slack="U012AB3CD")
BOB = Member(name="Bob <b>", email="bob@example.com")
KEY = "R" * 32


def notice(kind: NoticeKind = NoticeKind.PAGE, **kw: object) -> Notice:
    fields: dict[str, object] = {
        "kind": kind,
        "namespace": "shop",
        "name": "inc-7f3a",
        "title": "Checkout API OOMKilled",
        "severity": base.Severity.CRITICAL,
        "timestamp": T0,
        "summary": "container api was OOMKilled 3 times in 10m",
        "level": 1,
        "recipients": [ANN, BOB],
        "target": "Deployment shop/checkout",
        "links": [("Runbook", "https://wiki.example.com/rb?a=1&b=2")],
        "details": {"container": "api"},
        "category": "OOMKilled",
    }
    fields.update(kw)
    return Notice(**fields)  # type: ignore[arg-type]


# --- the Notice itself ----------------------------------------------------------------


def test_dedup_key_is_stable_per_incident_and_shared_by_every_kind() -> None:
    keys = {notice(kind).dedup_key for kind in NoticeKind}
    assert keys == {"oncall.dev/shop/inc-7f3a"}


def test_dedup_key_of_a_very_long_name_fits_pagerduty_and_stays_distinct() -> None:
    a = notices.dedup_key_for("ns", "a" * 253)
    b = notices.dedup_key_for("ns", "a" * 252 + "b")
    assert len(a) <= 255 and len(b) <= 255 and a != b
    assert a == notices.dedup_key_for("ns", "a" * 253)


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        notice(timestamp=dt.datetime(2026, 1, 5, 9, 0))


def test_notice_is_immutable_and_copies_its_collections() -> None:
    details = {"a": "1"}
    n = notice(details=details, links=[("x", "https://x")])
    details["a"] = "2"
    assert n.details["a"] == "1" and n.links == (("x", "https://x"),)
    with pytest.raises(TypeError):
        n.details["b"] = "3"  # type: ignore[index]


def test_delivery_id_is_stable_and_differs_by_kind_level_and_time() -> None:
    ids = {
        notices.delivery_id(notice()),
        notices.delivery_id(notice(kind=NoticeKind.REMINDER)),
        notices.delivery_id(notice(level=2)),
        notices.delivery_id(notice(timestamp=T0 + dt.timedelta(seconds=1))),
    }
    assert len(ids) == 4 and notices.delivery_id(notice()) == notices.delivery_id(notice())


# --- each kind x each channel -------------------------------------------------------

KINDS = [
    # kind, slack emoji, PagerDuty action, email subject, has a PagerDuty payload
    (NoticeKind.PAGE, ":rotating_light:", "trigger", "[CRITICAL] Checkout API OOMKilled (shop/inc-7f3a)", True),
    (
        NoticeKind.REMINDER,
        ":alarm_clock:",
        "trigger",
        "[CRITICAL] Reminder: Checkout API OOMKilled (shop/inc-7f3a)",
        True,
    ),
    (
        NoticeKind.ACKNOWLEDGE,
        ":eyes:",
        "acknowledge",
        "[CRITICAL] Acknowledged by ann: Checkout API OOMKilled (shop/inc-7f3a)",
        False,
    ),
    (
        NoticeKind.RESOLVE,
        ":white_check_mark:",
        "resolve",
        "[CRITICAL] Resolved by ann: Checkout API OOMKilled (shop/inc-7f3a)",
        False,
    ),
    (
        NoticeKind.NOTIFY,
        ":information_source:",
        "trigger",
        "[CRITICAL] Notice: Checkout API OOMKilled (shop/inc-7f3a)",
        True,
    ),
]


@pytest.mark.parametrize(("kind", "emoji", "_action", "_subject", "_payload"), KINDS)
def test_slack_payload(kind: NoticeKind, emoji: str, _action: str, _subject: str, _payload: bool) -> None:
    p = notices.slack_payload(notice(kind, actor="ann"))
    assert p["text"] and "Checkout API OOMKilled" in p["text"] and "shop/inc-7f3a" in p["text"]
    section, context = p["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith(emoji + " *")
    assert "<@U012AB3CD>" in section["text"]["text"] and "<@U012AB3CD>" in p["text"]
    assert "Bob &lt;b&gt;" in section["text"]["text"]  # no Slack ID: by name, escaped
    assert "<https://wiki.example.com/rb?a=1&b=2|Runbook>" in section["text"]["text"]
    assert context["type"] == "context" and 1 <= len(context["elements"]) <= 10
    assert all(e["type"] == "mrkdwn" and e["text"] for e in context["elements"])


@pytest.mark.parametrize(("kind", "_emoji", "action", "_subject", "has_payload"), KINDS)
def test_pagerduty_event(kind: NoticeKind, _emoji: str, action: str, _subject: str, has_payload: bool) -> None:
    e = notices.pagerduty_event(notice(kind), KEY)
    assert e["routing_key"] == KEY and e["event_action"] == action and e["dedup_key"] == "oncall.dev/shop/inc-7f3a"
    assert ("payload" in e) == has_payload
    if has_payload:
        p = e["payload"]
        assert p["summary"].startswith("Checkout API OOMKilled (shop/inc-7f3a)")
        assert (p["source"], p["severity"], p["component"], p["group"], p["class"]) == (
            "Deployment shop/checkout",
            "critical",
            "Deployment shop/checkout",
            "shop",
            "OOMKilled",
        )
        assert dt.datetime.fromisoformat(p["timestamp"]) == T0
        assert p["custom_details"]["container"] == "api" and p["custom_details"]["kind"] == kind.value
        assert e["links"] == [{"href": "https://wiki.example.com/rb?a=1&b=2", "text": "Runbook"}]


@pytest.mark.parametrize(("kind", "_emoji", "_action", "subject", "_payload"), KINDS)
def test_email_message(kind: NoticeKind, _emoji: str, _action: str, subject: str, _payload: bool) -> None:
    m = notices.email_message(notice(kind, actor="ann"), "oncall@example.com", ["sre@example.com", "ann@example.com"])
    assert m["Subject"] == subject
    assert m["From"] == "oncall@example.com" and m["To"] == "sre@example.com, ann@example.com"
    assert email.utils.parsedate_to_datetime(m["Date"]) == T0
    assert m["Auto-Submitted"] == "auto-generated" and m["X-Oncall-Kind"] == kind.value
    body = m.get_content()
    assert "Incident:  shop/inc-7f3a" in body and "container api was OOMKilled" in body
    assert "- Runbook: https://wiki.example.com/rb?a=1&b=2" in body and "oncall.dev/shop/inc-7f3a" in body


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_webhook_body(kind: NoticeKind) -> None:
    b = notices.webhook_body(notice(kind, actor="ann"))
    assert b == {
        "version": "1",
        "id": notices.delivery_id(notice(kind, actor="ann")),
        "kind": kind.value,
        "timestamp": "2026-01-05T09:00:00+00:00",
        "dedupKey": "oncall.dev/shop/inc-7f3a",
        "incident": {
            "namespace": "shop",
            "name": "inc-7f3a",
            "title": "Checkout API OOMKilled",
            "severity": "critical",
            "summary": "container api was OOMKilled 3 times in 10m",
            "target": "Deployment shop/checkout",
            "category": "OOMKilled",
        },
        "level": 1,
        "actor": "ann",
        "recipients": [
            {"name": "Ann Example", "email": "ann@example.com", "slack": "U012AB3CD"},
            {"name": "Bob <b>", "email": "bob@example.com"},
        ],
        "links": [{"text": "Runbook", "url": "https://wiki.example.com/rb?a=1&b=2"}],
        "details": {"container": "api"},
    }


# --- severity, truncation, hostile text -----------------------------------------------


@pytest.mark.parametrize(
    ("severity", "expected"),
    [(base.Severity.CRITICAL, "critical"), (base.Severity.WARNING, "warning"), (base.Severity.INFO, "info")],
)
def test_pagerduty_severity_mapping(severity: base.Severity, expected: str) -> None:
    assert notices.pagerduty_event(notice(severity=severity), KEY)["payload"]["severity"] == expected
    assert notices.email_message(notice(severity=severity), "a@b.c", ["d@e.f"])["Subject"].startswith(
        f"[{severity.value.upper()}]"
    )


def test_pagerduty_summary_is_truncated_to_1024() -> None:
    p = notices.pagerduty_event(notice(summary="x" * 5000), KEY)["payload"]
    assert len(p["summary"]) == 1024 and p["summary"].endswith("\u2026")


def test_pagerduty_summary_is_one_line() -> None:
    p = notices.pagerduty_event(notice(title="a\nb", summary="c\r\n\td"), KEY)["payload"]
    assert p["summary"] == "a b (shop/inc-7f3a) \u2014 c d"


def test_pagerduty_without_target_uses_the_incident_as_source_and_omits_empty_fields() -> None:
    p = notices.pagerduty_event(notice(target="", category=""), KEY)["payload"]
    assert p["source"] == "shop/inc-7f3a" and "component" not in p and "class" not in p


def test_slack_texts_stay_within_limits() -> None:
    p = notices.slack_payload(notice(summary="y" * 10000, title="t" * 2000))
    assert len(p["text"]) <= 3000 and len(p["blocks"][0]["text"]["text"]) <= 3000


def test_slack_escapes_control_characters_and_ignores_a_bogus_member_id() -> None:
    odd = Member.model_construct(name="Eve", slack="<!channel>")  # the schema refuses it; the renderer too
    p = notices.slack_payload(notice(title="a<b>&c", summary="<!here>", recipients=[odd]))
    text = p["blocks"][0]["text"]["text"]
    assert "a&lt;b&gt;&amp;c" in text and "&lt;!here&gt;" in text and "<!" not in text
    assert "<@" not in text and "Eve" in text


def test_slack_fallback_text_cannot_ping_the_whole_channel() -> None:
    p = notices.slack_payload(notice(title="<!channel> disk full & more"))
    assert "<!channel>" not in p["text"] and "&lt;!channel&gt; disk full &amp; more" in p["text"]


def test_slack_link_text_cannot_break_out_of_the_link() -> None:
    p = notices.slack_payload(notice(links=[("a|b>c", "https://x.example/<p>|q")]))
    assert "<https://x.example/pq|a\u00a6b&gt;c>" in p["blocks"][0]["text"]["text"]


def test_email_subject_cannot_inject_headers() -> None:
    m = notices.email_message(notice(title="boom\r\nBcc: victim@example.com"), "a@b.c", ["d@e.f"])
    assert m["Bcc"] is None and "\n" not in m["Subject"]
    assert m["Subject"] == "[CRITICAL] boom Bcc: victim@example.com (shop/inc-7f3a)"


def test_email_needs_a_recipient() -> None:
    with pytest.raises(ValueError, match="recipient"):
        notices.email_message(notice(), "a@b.c", [])


def test_critical_pages_are_marked_important_but_acknowledgements_are_not() -> None:
    assert notices.email_message(notice(), "a@b.c", ["d@e.f"])["Importance"] == "high"
    assert notices.email_message(notice(NoticeKind.ACKNOWLEDGE), "a@b.c", ["d@e.f"])["Importance"] is None
    assert notices.email_message(notice(severity=base.Severity.INFO), "a@b.c", ["d@e.f"])["Importance"] is None
